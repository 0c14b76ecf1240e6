import NIOCore
import PocketProtocol

/// Closes a connection whose frame, once begun, has not arrived whole within `timeout`, so a
/// client trickling bytes (a slow loris) cannot hold a connection, and the buffer of its partial
/// frame, for ever; the idle timeout alone resets at every byte. Follows frame boundaries by the
/// length prefix only and passes every byte on unchanged.
final class FrameDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    /// Bytes of the current frame's length prefix seen so far.
    private var prefix: UInt32 = 0
    private var prefixBytes = 0
    /// Bytes of the current frame still to come after its length prefix.
    private var remaining = 0
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        var index = buffer.readerIndex
        let end = buffer.writerIndex
        while index < end {
            if remaining == 0 {
                if prefixBytes == 0 { start(context) }
                prefix = prefix << 8 | UInt32(buffer.getInteger(at: index, as: UInt8.self)!)
                prefixBytes += 1
                index += 1
                if prefixBytes == 4 {
                    remaining = Int(prefix)
                    (prefix, prefixBytes) = (0, 0)
                    if remaining == 0 { finish() }
                }
            } else {
                let taken = min(remaining, end - index)
                index += taken
                remaining -= taken
                if remaining == 0 { finish() }
            }
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    private func start(_ context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    private func finish() {
        deadline?.cancel()
        deadline = nil
    }
}
