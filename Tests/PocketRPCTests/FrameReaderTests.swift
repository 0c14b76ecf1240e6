import NIOCore
import NIOEmbedded
import PocketProtocol
import Testing

@testable import PocketRPC

/// The reader yields the frames a stream holds however its reads split it, refuses bad headers
/// before their bodies, and holds no more than the bytes sent.
@Suite struct FrameReaderTests {
    @Test(arguments: [1, 7, 100, 4096, 65536, 1 << 20])
    func framesArriveWholeFromAnySplit(_ readSize: Int) throws {
        let channel = EmbeddedChannel(handler: FrameReader())
        // Byte-by-byte reads get a shorter stream: the debug build feeds them one call each.
        let (whole, bodies) = FrameStreams.stream(
            readSize < 100 ? [0, 5, 70_000, 1, 16] : [0, 5, 70_000, 1, 300_000, 16, 1 << 20])
        var rest = whole
        var generator = SystemRandomNumberGenerator()
        while rest.readableBytes > 0 {
            let size = min(rest.readableBytes, Int.random(in: 1...readSize, using: &generator))
            try channel.writeInbound(rest.readSlice(length: size)!)
        }
        _ = try FrameStreams.expectFrames(try FrameStreams.frames(channel), carrying: bodies)
    }

    @Test func anOversizedHeaderIsRefusedBeforeItsBody() throws {
        let channel = EmbeddedChannel(handler: FrameReader(maxFrameSize: 1 << 20))
        var header = ByteBuffer()
        header.writeInteger(UInt32(16 << 20))
        header.writeInteger(FrameHeader.version)
        header.writeInteger(Opcode.writeBlocks.rawValue)
        header.writeInteger(UInt16(0))
        header.writeInteger(UInt64(9))
        // The header comes in two reads, with no body after it.
        try channel.writeInbound(header.getSlice(at: 0, length: 5)!)
        #expect(try FrameStreams.frames(channel).isEmpty)
        try channel.writeInbound(header.getSlice(at: 5, length: 11)!)
        let events = try FrameStreams.frames(channel)
        guard events.count == 1, case .invalid(let requestID, _, let error) = events[0] else {
            Issue.record("expected one refusal, got \(events)")
            return
        }
        #expect(requestID == 9)
        #expect(error.code == .frameTooLarge)
        // Whatever follows is dropped: the stream is out of step.
        try channel.writeInbound(FrameStreams.stream([10]).0)
        #expect(try FrameStreams.frames(channel).isEmpty)
    }

    @Test func aFrameInsideOneReadIsASliceOfIt() throws {
        let channel = EmbeddedChannel(handler: FrameReader())
        let (whole, _) = FrameStreams.stream([1000])
        try channel.writeInbound(whole)
        guard case .frame(let frame) = try FrameStreams.frames(channel).first else {
            Issue.record("no frame")
            return
        }
        let same = frame.payload.withUnsafeReadableBytes { payload in
            whole.withUnsafeReadableBytes { read in payload.baseAddress! == read.baseAddress! + FrameHeader.size }
        }
        #expect(same, "the payload was copied")
    }
}
