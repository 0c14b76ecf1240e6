import Foundation
import NIOCore
import PocketProtocol

/// One libFuzzer entry point for every decoder; `POCKET_FUZZ_TARGET` picks which (scripts/fuzz runs
/// each with a corpus of its own). A decoder may refuse any input, but must not crash, hang or
/// allocate without bound; whatever it accepts must encode and decode back to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    target(ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// SwiftPM links an executable's `main` to `<module>_main`; here that hands control to libFuzzer's
/// driver (whose own `main` is then not linked in).
@_cdecl("PocketFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    if ProcessInfo.processInfo.environment["POCKET_FUZZ_TARGET"] == "list" {
        print(Targets.names)
        return 0
    }
    var (count, arguments) = (argc, argv)
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzz(data!, size) }
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

let target: @Sendable (ByteBuffer) -> Void = {
    let name = ProcessInfo.processInfo.environment["POCKET_FUZZ_TARGET"] ?? "frame"
    guard let target = Targets.all[name] else {
        FileHandle.standardError.write(Data("unknown POCKET_FUZZ_TARGET \(name); one of \(Targets.names)\n".utf8))
        exit(2)
    }
    return target
}()

enum Targets {
    static var names: String { all.keys.sorted().joined(separator: " ") }

    static let all: [String: @Sendable (ByteBuffer) -> Void] = [
        "frame": frames,
        "Ping": roundTrip(Ping.self), "Empty": roundTrip(Empty.self),
        "RegisterServer": roundTrip(RegisterServer.self), "RegisterServerReply": roundTrip(RegisterServerReply.self),
        "JobRecord": roundTrip(JobRecord.self),
        "Heartbeat": roundTrip(Heartbeat.self), "RegisterJob": roundTrip(RegisterJob.self),
        "JobGrant": roundTrip(JobGrant.self), "DeregisterJob": roundTrip(DeregisterJob.self),
        "LookupJob": roundTrip(LookupJob.self), "ListJobs": roundTrip(ListJobs.self),
        "JobList": roundTrip(JobList.self),
        "ClusterStatus": roundTrip(ClusterStatus.self), "UpdateHints": roundTrip(UpdateHints.self),
        "ListEvents": roundTrip(ListEvents.self), "EventList": roundTrip(EventList.self),
        "AssignJob": roundTrip(AssignJob.self), "DropJob": roundTrip(DropJob.self),
        "DropJobReply": roundTrip(DropJobReply.self), "ServerTable": roundTrip(ServerTable.self),
        "SetWeightMap": roundTrip(SetWeightMap.self), "PutInline": roundTrip(PutInline.self),
        "GetObject": roundTrip(GetObject.self), "ObjectLocation": roundTrip(ObjectLocation.self),
        "AllocateBlocks": roundTrip(AllocateBlocks.self), "BlockList": roundTrip(BlockList.self),
        "AuthorizeBlocks": roundTrip(AuthorizeBlocks.self), "Capability": roundTrip(Capability.self),
        "CommitObject": roundTrip(CommitObject.self), "Committed": roundTrip(Committed.self),
        "AbortBlocks": roundTrip(AbortBlocks.self),
        "Stat": roundTrip(Stat.self), "List": roundTrip(List.self), "EntryList": roundTrip(EntryList.self),
        "Delete": roundTrip(Delete.self), "Rename": roundTrip(Rename.self),
        "MakeDirectory": roundTrip(MakeDirectory.self), "GetServers": roundTrip(GetServers.self),
        "Create": roundTrip(Create.self), "MakeSymlink": roundTrip(MakeSymlink.self),
        "SetAttributes": roundTrip(SetAttributes.self), "WriteBlocks": roundTrip(WriteBlocks.self),
        "ReadBlocks": roundTrip(ReadBlocks.self), "BlockData": roundTrip(BlockData.self),
        "FreeBlocks": roundTrip(FreeBlocks.self), "FreeJob": roundTrip(FreeJob.self),
        "FreeReply": roundTrip(FreeReply.self), "StorageStats": roundTrip(StorageStats.self),
    ]

    /// A message decoded from the input must survive encode → decode unchanged.
    static func roundTrip<M: WireMessage & Equatable>(_: M.Type) -> @Sendable (ByteBuffer) -> Void {
        { input in
            var buffer = input
            guard let message = try? M(from: &buffer) else { return }
            var bytes = ByteBuffer()
            for var part in WireWriter.frame(message, header: FrameHeader(opcode: .ping, requestID: 1)) {
                bytes.writeBuffer(&part)
            }
            bytes.moveReaderIndex(forwardBy: FrameHeader.size)
            guard let again = try? M(from: &bytes), again == message, bytes.readableBytes == 0 else {
                fatalError("\(M.self) did not survive encode and decode: \(message)")
            }
        }
    }

    /// The stream framer, fed the input in pieces whose sizes the input's first byte chooses: every
    /// frame it returns lies within the input, and once it reports an invalid frame it yields
    /// nothing more.
    static func frames(_ input: ByteBuffer) {
        var rest = input
        let step = Int(rest.readInteger(as: UInt8.self) ?? 1) + 1
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        var stream = ByteBuffer()
        var poisoned = false
        while rest.readableBytes > 0 {
            var piece = rest.readSlice(length: min(step, rest.readableBytes))!
            stream.writeBuffer(&piece)
            while let event = decoder.decode(buffer: &stream) {
                switch event {
                case .frame(let frame):
                    precondition(!poisoned, "a frame after an invalid one")
                    precondition(frame.payload.readableBytes < input.readableBytes, "a frame larger than its input")
                case .invalid:
                    precondition(!poisoned, "two invalid frames")
                    poisoned = true
                }
            }
        }
    }
}
