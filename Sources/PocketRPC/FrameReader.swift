@_spi(CustomByteBufferAllocator) import NIOCore
import PocketProtocol

/// Cuts a connection's byte stream into frames. A frame that arrives inside one read is a slice
/// of it (no copy). On plain TCP, a large frame whose head has arrived is read straight into memory
/// of its exact size (see `ReceiveTarget`): only the head is copied there (and, on a new
/// connection, the first few reads). Otherwise a frame spread over several reads is kept as those
/// reads and copied once, when whole, into a buffer of its exact size: a general cumulation buffer
/// (NIO's `ByteToMessageHandler`) grows by doubling and compacts after each frame, two extra copies
/// of every block. Held bytes never exceed what the peer sent (sparse reads are compacted; a large
/// frame's memory is reserved but only touched as it arrives), and a bad header is refused as soon
/// as its 16 bytes are in, before the frame's body.
///
/// With a `frameTimeout` (servers), a connection whose frame, once begun, has not arrived whole
/// within it is closed, so a client trickling bytes (a slow loris) cannot hold a connection and its
/// partial frame for ever; an idle timeout alone resets at every byte. The timer is set only while
/// a frame is partial: frames that arrive whole within a read, as small requests do, cost none.
final class FrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = FrameEvent

    private var decoder: FrameDecoder
    private let target: ReceiveTarget?
    /// Reads holding the start of a frame not yet whole, oldest first.
    private var parts: [ByteBuffer] = []
    private var partBytes = 0
    /// Whether the pending frame's header has been checked, and its size once known.
    private var headerChecked = false
    private var pendingSize: Int?
    /// The large frame being read into its own memory, and how many of its bytes are in.
    private var direct: (memory: UnsafeMutableRawBufferPointer, filled: Int)?
    private var poisoned = false
    private let frameTimeout: TimeAmount?
    /// Closes the connection unless the partial frame is whole by then.
    private var frameDeadline: Scheduled<Void>?
    /// Whether a frame was passed on during the current read: a partial frame after it is a new one.
    private var deliveredDuringRead = false

    /// Reads of up to 1 MiB when data keeps coming (blocks travel 16 to a frame), down to 1 KiB
    /// on quiet connections: fewer reads, fewer parts per frame. For connections without a
    /// `ReceiveTarget` (TLS, whose records NIOSSL decrypts into buffers of its own).
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 << 10, maximum: 1 << 20)

    /// With a `target`, large frames are read into their own memory; it must be the target
    /// installed on this reader's channel.
    init(
        maxFrameSize: Int = FrameDecoder.defaultMaxFrameSize, target: ReceiveTarget? = nil,
        frameTimeout: TimeAmount? = nil
    ) {
        decoder = FrameDecoder(maxFrameSize: maxFrameSize)
        self.target = target
        self.frameTimeout = frameTimeout
    }

    deinit {
        direct.map { ReceiveTarget.release($0.memory) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !poisoned else { return }
        deliveredDuringRead = false
        receive(unwrapInboundIn(data), context)
        if frameTimeout != nil { updateFrameDeadline(context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        context.fireChannelInactive()
    }

    /// Starts the deadline when a frame is left partial, and stops it when none is.
    private func updateFrameDeadline(_ context: ChannelHandlerContext) {
        let partial = !poisoned && (!parts.isEmpty || direct != nil)
        if partial, frameDeadline != nil, !deliveredDuringRead { return }
        frameDeadline?.cancel()
        frameDeadline = nil
        guard partial, let frameTimeout else { return }
        let channel = context.channel
        frameDeadline = context.eventLoop.scheduleTask(in: frameTimeout) { channel.close(promise: nil) }
    }

    private func receive(_ read: ByteBuffer, _ context: ChannelHandlerContext) {
        var buffer = read
        if direct != nil {
            guard let rest = filled(by: buffer, context), !poisoned else { return }
            buffer = rest
        }
        if !parts.isEmpty {
            keep(buffer)
            guard let whole = assembleFrame(context) else {
                readRestDirectly()
                return
            }
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
        readRestDirectly()
    }

    /// Drops whatever is held of a frame not yet whole.
    private func forget() {
        frameDeadline?.cancel()
        frameDeadline = nil
        parts.removeAll()
        partBytes = 0
        pendingSize = nil
        headerChecked = false
        if let direct { ReceiveTarget.release(direct.memory) }
        direct = nil
        target?.window = nil
    }

    /// Once a large frame's header is checked, moves what has arrived of it into memory of its
    /// size and has the next reads land there.
    private func readRestDirectly() {
        guard let target, !poisoned, let size = pendingSize, size >= ReceiveTarget.directThreshold,
            partBytes < size
        else { return }
        let memory = ReceiveTarget.frameMemory(size)
        var filled = 0
        for part in parts {
            part.withUnsafeReadableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: memory[filled...]).copyMemory(from: bytes)
            }
            filled += part.readableBytes
        }
        parts.removeAll()
        partBytes = 0
        direct = (memory, filled)
        target.window = UnsafeMutableRawBufferPointer(rebasing: memory[filled...])
    }

    /// A read that went into the large frame's memory, or came in an ordinary buffer to be copied
    /// there (see `ReceiveTarget.handedOut`). Returns what the read holds after the frame, if anything.
    private func filled(by read: ByteBuffer, _ context: ChannelHandlerContext) -> ByteBuffer? {
        guard let target, let memory = direct?.memory, var filled = direct?.filled else { return nil }
        var read = read
        let intoWindow = read.withUnsafeReadableBytes {
            $0.baseAddress == UnsafeRawPointer(memory.baseAddress! + filled)
        }
        let taken = intoWindow ? read.readableBytes : min(read.readableBytes, memory.count - filled)
        if !intoWindow {
            read.withUnsafeReadableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: memory[filled...]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: bytes[..<taken]))
            }
        }
        read.moveReaderIndex(forwardBy: taken)
        filled += taken
        guard filled == memory.count else {
            direct = (memory, filled)
            target.window = UnsafeMutableRawBufferPointer(rebasing: memory[filled...])
            return nil
        }
        direct = nil
        target.window = nil
        headerChecked = false
        pendingSize = nil
        var frame = ByteBuffer(takingOwnershipOf: memory, allocator: ReceiveTarget.owning)
        if let event = decoder.decode(buffer: &frame) { deliver(event, context) }
        return read.readableBytes > 0 ? read : nil
    }

    private func deliver(_ event: FrameEvent, _ context: ChannelHandlerContext) {
        deliveredDuringRead = true
        if case .invalid = event {
            poisoned = true
            forget()
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
            var slice = part.getSlice(
                at: part.readerIndex, length: min(part.readableBytes, count - head.readableBytes))!
            head.writeBuffer(&slice)
        }
        return head
    }

    /// Refuses a bad header (wrong version, too large) as soon as it has arrived.
    private func checkHeader(_ context: ChannelHandlerContext) {
        guard !headerChecked, partBytes >= FrameHeader.size else { return }
        headerChecked = true
        var head = peek(FrameHeader.size)
        let length = head.getInteger(at: head.readerIndex, as: UInt32.self)!
        if case .invalid(let requestID, let opcode, let error) = decoder.decode(buffer: &head) {
            deliver(.invalid(requestID: requestID, opcode: opcode, error), context)
            return
        }
        pendingSize = Int(length) + 4
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
