import NIOCore
import NIOEmbedded
import PocketProtocol
import PocketTestSupport
import Synchronization
import Testing

@testable import PocketRPC

/// On plain TCP a large frame is read straight into memory of its own size: every frame still
/// arrives whole and intact however the reads split the stream, a read that brings nothing loses
/// nothing, and refused headers stop the stream as before.
@Suite struct DirectReceiveTests {
    /// Plays NIO's part in one read: asks the allocator for a buffer, as NIO's pool does when it
    /// has none to reuse, and fills it with at most `count` bytes of `stream`.
    func read(
        _ count: Int, of stream: inout ByteBuffer, via allocator: inout FrameReceiveAllocator,
        into channel: EmbeddedChannel
    ) throws {
        var buffer = allocator.buffer(allocator: ByteBufferAllocator())
        let size = min(count, buffer.writableBytes, stream.readableBytes)
        guard size > 0 else { return }
        var bytes = stream.readSlice(length: size)!
        buffer.writeBuffer(&bytes)
        _ = allocator.record(actualReadBytes: size)
        try channel.writeInbound(buffer)
    }

    @Test(arguments: [100, 4096, 70_000, 1 << 20])
    func largeFramesLandInMemoryOfTheirOwn(_ readSize: Int) throws {
        let target = ReceiveTarget()
        var allocator = FrameReceiveAllocator(target: target)
        let channel = EmbeddedChannel(handler: FrameReader(target: target))
        // Small reads get a shorter stream: the debug build feeds them one call each, and a suite
        // hogging the test process's threads slows the timed tests beside it.
        let sizes = readSize < 4096 ? [5, 70_000, 3] : [0, 5, 70_000, 1, 300_000, 16, 1 << 20, 65_000, 2 << 20]
        var (rest, bodies) = FrameStreams.stream(sizes)
        var generator = SplitMix64(seed: UInt64(readSize))
        while rest.readableBytes > 0 {
            try read(Int(generator.next() % UInt64(readSize)) + 1, of: &rest, via: &allocator, into: channel)
        }
        for (index, frame) in try FrameStreams.expectFrames(try FrameStreams.frames(channel), carrying: bodies)
            .enumerated()
        {
            let size = frame.payload.readableBytes + FrameHeader.size
            if size >= ReceiveTarget.directThreshold, readSize < size {
                // Its memory is the frame's exact size: it was read there, not gathered from reads.
                #expect(frame.payload.storageCapacity == size, "frame \(index) of \(size) bytes")
            }
        }
        #expect(target.window == nil)
    }

    @Test func aReadThatBringsNothingLosesNothing() throws {
        let target = ReceiveTarget()
        var allocator = FrameReceiveAllocator(target: target)
        let channel = EmbeddedChannel(handler: FrameReader(target: target))
        var (rest, bodies) = FrameStreams.stream([500_000])
        // As if NIO's pool had its buffers already: what follows may be the frame's memory.
        for _ in 0..<ReceiveTarget.readsPerEvent { _ = allocator.buffer(allocator: ByteBufferAllocator()) }
        try read(1000, of: &rest, via: &allocator, into: channel)
        let window = try #require(target.window?.baseAddress)
        // NIO asks for a buffer, the socket has nothing (EAGAIN), and the buffer is dropped.
        let dropped = allocator.buffer(allocator: ByteBufferAllocator())
        #expect(dropped.withVeryUnsafeBytes { $0.baseAddress } == UnsafeRawPointer(window))
        try read(200_000, of: &rest, via: &allocator, into: channel)
        _ = allocator.buffer(allocator: ByteBufferAllocator())
        while rest.readableBytes > 0 { try read(1 << 20, of: &rest, via: &allocator, into: channel) }
        guard case .frame(let frame) = try FrameStreams.frames(channel).first else {
            Issue.record("no frame")
            return
        }
        #expect(try frame.decode(BlockData.self).blocks == bodies)
    }

    @Test func aConnectionsFirstReadsAreCopiedThenReadsLandInTheFrame() throws {
        let target = ReceiveTarget()
        var allocator = FrameReceiveAllocator(target: target)
        let channel = EmbeddedChannel(handler: FrameReader(target: target))
        var (rest, bodies) = FrameStreams.stream([2 << 20])
        var landed: [Bool] = []
        while rest.readableBytes > 0 {
            var buffer = allocator.buffer(allocator: ByteBufferAllocator())
            let window = target.window?.baseAddress.map { UnsafeRawPointer($0) }
            landed.append(window != nil && buffer.withVeryUnsafeBytes { $0.baseAddress } == window)
            var bytes = rest.readSlice(length: min(10_000, buffer.writableBytes, rest.readableBytes))!
            buffer.writeBuffer(&bytes)
            _ = allocator.record(actualReadBytes: buffer.readableBytes)
            try channel.writeInbound(buffer)
        }
        // NIO's pool keeps the first buffers it is given: those are never the frame's memory.
        #expect(!landed.prefix(ReceiveTarget.readsPerEvent).contains(true))
        #expect(!landed.dropFirst(ReceiveTarget.readsPerEvent).contains(false))
        guard case .frame(let frame) = try FrameStreams.frames(channel).first else {
            Issue.record("no frame")
            return
        }
        #expect(try frame.decode(BlockData.self).blocks == bodies)
        #expect(frame.payload.storageCapacity == (2 << 20) + 24)
    }

    @Test func anOversizedHeaderIsRefusedAndNothingMoreIsRead() throws {
        let target = ReceiveTarget()
        var allocator = FrameReceiveAllocator(target: target)
        let channel = EmbeddedChannel(handler: FrameReader(maxFrameSize: 1 << 20, target: target))
        var (rest, _) = FrameStreams.stream([100_000, 2 << 20, 10])
        while rest.readableBytes > 0 { try read(50_000, of: &rest, via: &allocator, into: channel) }
        let events = try FrameStreams.frames(channel)
        guard events.count == 2, case .frame = events[0], case .invalid(let requestID, _, let error) = events[1] else {
            Issue.record("expected a frame and a refusal, got \(events)")
            return
        }
        #expect(requestID == 1)
        #expect(error.code == .frameTooLarge)
        #expect(target.window == nil)
    }

    @Test func aConnectionClosedInsideALargeFrameLetsItsMemoryGo() throws {
        let target = ReceiveTarget()
        var allocator = FrameReceiveAllocator(target: target)
        let channel = EmbeddedChannel(handler: FrameReader(target: target))
        var (rest, _) = FrameStreams.stream([1 << 20])
        try read(300_000, of: &rest, via: &allocator, into: channel)
        #expect(target.window != nil)
        _ = try channel.finish()
        #expect(target.window == nil)
    }

    /// Answers a block write with the same blocks.
    struct Echo: RequestHandler {
        func handle(_ request: Frame) -> Reply {
            switch request.header.opcode {
            case .ping: return request.serve(Ping.self) { _ in Empty() }
            case .readBlocks: return .error(PocketError(.unknownOpcode))
            default:
                // Carried as WriteBlocks, answered as the BlockData a read would get.
                return request.serve(EchoBlocks.self) { BlockData(blocks: $0.blocks.map(\.data)) }
            }
        }
    }

    struct EchoBlocks: WireRequest {
        typealias Response = BlockData
        static let opcode = Opcode.writeBlocks
        var write: WriteBlocks
        var blocks: [WriteBlocks.Block] { write.blocks }
        init(_ blocks: [WriteBlocks.Block]) { write = WriteBlocks(jobID: 1, capabilities: [], blocks: blocks) }
        init(from buffer: inout ByteBuffer) throws { write = try WriteBlocks(from: &buffer) }
        func encode(into writer: inout WireWriter) { write.encode(into: &writer) }
    }

    @Test func largeFramesBothWaysOverPlainTCPArriveIntact() async throws {
        try await withPlainServer(Echo()) { endpoint in
            let connection = try await RPCConnection.connect(to: endpoint, security: .plain)
            var generator = SplitMix64(seed: 11)
            // Frames of 120 KiB to 5 MiB, with pings between them.
            let rounds = (0..<8).map { round in
                (0..<(round % 2 == 0 ? 16 : 3)).map { index in
                    var data = ByteBuffer()
                    for _ in 0..<((round + 1) * 40_000 + index * 8) / 8 { data.writeInteger(generator.next()) }
                    return WriteBlocks.Block(id: BlockID(index), data: data)
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { calls in
                for blocks in rounds {
                    calls.addTask {
                        let reply = try await connection.call(EchoBlocks(blocks))
                        #expect(reply.blocks == blocks.map(\.data))
                    }
                    calls.addTask { _ = try await connection.call(Ping()) }
                }
                try await calls.waitForAll()
            }
            await connection.close()
        }
    }
}
