import NIOCore
import PocketProtocol

/// Cuts a connection's byte stream into frames. A frame that arrives inside one read is a slice
/// of it (no copy). One spread over several reads is kept as those reads and copied once, when
/// whole, into a buffer of its exact size: a general cumulation buffer (NIO's
/// `ByteToMessageHandler`) grows by doubling and compacts after each frame, and profiles of 64 MiB
/// gets showed those two extra copies of every block at about an eighth of the receiver's time.
/// Held bytes never exceed what the peer sent (sparse reads are compacted), and a bad header is
/// refused as soon as its 16 bytes are in, before the frame's body.
final class FrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = FrameEvent

    private var decoder: FrameDecoder
    /// Reads holding the start of a frame not yet whole, oldest first.
    private var parts: [ByteBuffer] = []
    private var partBytes = 0
    /// Whether the pending frame's header has been checked, and its size once known.
    private var headerChecked = false
    private var pendingSize: Int?
    private var poisoned = false

    /// Reads of up to 1 MiB when data keeps coming (blocks travel 16 to a frame), down to 1 KiB
    /// on quiet connections: fewer reads, fewer parts per frame.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 << 10, maximum: 1 << 20)

    init(maxFrameSize: Int = FrameDecoder.defaultMaxFrameSize) {
        decoder = FrameDecoder(maxFrameSize: maxFrameSize)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !poisoned else { return }
        var buffer = unwrapInboundIn(data)
        if !parts.isEmpty {
            keep(buffer)
            guard let whole = assembleFrame(context) else { return }
            deliver(whole, context)
            guard !poisoned, let rest = parts.popLast() else { return }
            partBytes = 0
            buffer = rest
        }
        while !poisoned, let event = decoder.decode(buffer: &buffer) { deliver(event, context) }
        if !poisoned, buffer.readableBytes > 0 {
            keep(buffer)
            checkHeader(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        parts.removeAll()
        partBytes = 0
        pendingSize = nil
        context.fireChannelInactive()
    }

    private func deliver(_ event: FrameEvent, _ context: ChannelHandlerContext) {
        if case .invalid = event {
            poisoned = true
            parts.removeAll()
            partBytes = 0
            pendingSize = nil
        }
        context.fireChannelRead(wrapInboundOut(event))
    }

    /// Holds a read. Small reads are copied together into parts of up to 64 KiB, so a peer
    /// trickling bytes makes neither many parts nor mostly empty buffers.
    private func keep(_ buffer: ByteBuffer) {
        var buffer = buffer
        partBytes += buffer.readableBytes
        guard buffer.readableBytes < Self.smallRead else {
            parts.append(buffer)
            return
        }
        if var last = parts.popLast() {
            if last.readableBytes + buffer.readableBytes <= Self.smallRead, last.capacity <= Self.smallRead {
                last.writeBuffer(&buffer)
                parts.append(last)
                return
            }
            parts.append(last)
        }
        var compact = ByteBufferAllocator().buffer(capacity: Self.smallRead)
        compact.writeBuffer(&buffer)
        parts.append(compact)
    }

    private static let smallRead = 1 << 16

    /// The first `count` held bytes, copied.
    private func peek(_ count: Int) -> ByteBuffer {
        var head = ByteBufferAllocator().buffer(capacity: count)
        for part in parts {
            guard head.readableBytes < count else { break }
            var slice = part.getSlice(at: part.readerIndex, length: min(part.readableBytes, count - head.readableBytes))!
            head.writeBuffer(&slice)
        }
        return head
    }

    /// Refuses a bad header (wrong version, too large) as soon as it has arrived.
    private func checkHeader(_ context: ChannelHandlerContext) {
        guard !headerChecked, partBytes >= FrameHeader.size else { return }
        headerChecked = true
        var head = peek(FrameHeader.size)
        if case .invalid(let requestID, let opcode, let error) = decoder.decode(buffer: &head) {
            deliver(.invalid(requestID: requestID, opcode: opcode, error), context)
        }
    }

    /// Once the held reads contain the pending frame whole, copies it into one buffer and decodes
    /// it; what follows it stays held as the last part.
    private func assembleFrame(_ context: ChannelHandlerContext) -> FrameEvent? {
        checkHeader(context)
        if pendingSize == nil, partBytes >= 4, let length = peek(4).getInteger(at: 0, as: UInt32.self) {
            pendingSize = Int(length) + 4
        }
        guard !poisoned, let size = pendingSize, partBytes >= size else { return nil }
        var frame = ByteBufferAllocator().buffer(capacity: size)
        var rest: ByteBuffer?
        for var part in parts {
            let take = min(part.readableBytes, size - frame.readableBytes)
            var piece = part.readSlice(length: take)!
            frame.writeBuffer(&piece)
            if part.readableBytes > 0 { rest = part }
        }
        parts = rest.map { [$0] } ?? []
        partBytes = rest?.readableBytes ?? 0
        headerChecked = false
        pendingSize = nil
        return decoder.decode(buffer: &frame)
    }
}
