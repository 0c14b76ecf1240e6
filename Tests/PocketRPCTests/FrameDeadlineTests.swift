import NIOCore
import NIOEmbedded
import Testing

@testable import PocketRPC

/// A frame begun must arrive whole within the deadline; complete frames, however split, never trip it.
@Suite struct FrameDeadlineTests {
    func frame(payload: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(12 + payload))
        buffer.writeRepeatingByte(1, count: 12 + payload)
        return buffer
    }

    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: FrameDeadlineHandler(timeout: .seconds(30)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func aTricklingFrameIsCutOff() throws {
        let channel = try channel()
        var whole = frame(payload: 100)
        // Three bytes every ten seconds: never idle, never done.
        for _ in 0..<3 {
            try channel.writeInbound(whole.readSlice(length: 3)!)
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        }
        #expect(!channel.isActive)
    }

    @Test func completeFramesInPiecesPassUnchanged() throws {
        let channel = try channel()
        var stream = ByteBuffer()
        for size in [0, 5, 70_000, 1] {
            var next = frame(payload: size)
            stream.writeBuffer(&next)
        }
        let sent = stream
        // In odd pieces, each quickly after the last, for longer than the deadline in all.
        var received = ByteBuffer()
        while stream.readableBytes > 0 {
            try channel.writeInbound(stream.readSlice(length: min(7_777, stream.readableBytes))!)
            channel.embeddedEventLoop.advanceTime(by: .seconds(3))
            while var piece = try channel.readInbound(as: ByteBuffer.self) { received.writeBuffer(&piece) }
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        #expect(received == sent)
        _ = try channel.finish()
    }

    @Test func betweenFramesOnlyTheIdleTimeoutApplies() throws {
        let channel = try channel()
        try channel.writeInbound(frame(payload: 10))
        channel.embeddedEventLoop.advanceTime(by: .minutes(5))
        #expect(channel.isActive)
        _ = try channel.finish()
    }
}
