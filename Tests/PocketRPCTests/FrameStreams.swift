import NIOCore
import NIOEmbedded
import PocketProtocol

/// Test streams of block frames, shared by the frame reader's suites.
enum FrameStreams {
    /// Frames carrying one block of each size (request ids 0, 1, …), and the blocks.
    static func stream(_ sizes: [Int]) -> (ByteBuffer, [ByteBuffer]) {
        var stream = ByteBuffer()
        var bodies: [ByteBuffer] = []
        for (index, size) in sizes.enumerated() {
            let body = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
            for var part in WireWriter.frame(
                BlockData(blocks: [body]), header: FrameHeader(opcode: .readBlocks, requestID: UInt64(index)))
            {
                stream.writeBuffer(&part)
            }
            bodies.append(body)
        }
        return (stream, bodies)
    }

    /// Everything the channel's reader has passed on so far.
    static func frames(_ channel: EmbeddedChannel) throws -> [FrameEvent] {
        var events: [FrameEvent] = []
        while let event = try channel.readInbound(as: FrameEvent.self) { events.append(event) }
        return events
    }
}
