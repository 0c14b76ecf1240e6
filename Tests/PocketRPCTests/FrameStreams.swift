import NIOCore
import NIOEmbedded
import PocketProtocol
import Testing

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

    /// The frames among `events`, each expected to carry its block of `bodies`, in order.
    static func expectFrames(
        _ events: [FrameEvent], carrying bodies: [ByteBuffer], sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> [Frame] {
        #expect(events.count == bodies.count, sourceLocation: sourceLocation)
        var frames: [Frame] = []
        for (index, event) in events.enumerated() {
            guard case .frame(let frame) = event else {
                Issue.record("frame \(index) was refused", sourceLocation: sourceLocation)
                continue
            }
            #expect(frame.header.requestID == UInt64(index), sourceLocation: sourceLocation)
            #expect(try frame.decode(BlockData.self).blocks == [bodies[index]], sourceLocation: sourceLocation)
            frames.append(frame)
        }
        return frames
    }
}
