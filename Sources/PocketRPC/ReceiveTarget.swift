@_spi(CustomByteBufferAllocator) import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a plain TCP connection's next socket read goes: between frames, into an ordinary receive
/// buffer; inside a large frame whose head has arrived, straight into the frame's own memory, so
/// its bytes are never copied again in this process. (Assembling such frames from the reads that
/// carried them was about a tenth of a 64 MiB get's client time, and as much of a storage
/// server's time under puts.)
///
/// The connection's `FrameReader` sets the window; NIO asks for buffers through
/// `FrameReceiveAllocator`. Both run on the channel's event loop only, hence `@unchecked Sendable`.
final class ReceiveTarget: @unchecked Sendable {
    /// The unfilled rest of the frame being read, if one is.
    var window: UnsafeMutableRawBufferPointer?
    /// Sizes reads between frames: small frames come many to a read; a large one's head is
    /// copied once, so these stay modest.
    private var between = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 << 10, maximum: 64 << 10)

    /// Frames at least this large are read into memory of their own.
    static let directThreshold = 64 << 10

    /// Reads NIO may make per readable event, which is also how many receive buffers its pool keeps.
    static let readsPerEvent = 16
    /// Buffers handed to NIO so far, counted up to `readsPerEvent`. NIO's pool keeps each new
    /// buffer until it holds that many, and reuses a kept one once nothing else refers to it: a
    /// window kept there could later be read into after its frame was handed on. So windows are
    /// only handed out once the pool is full; until then a large frame's reads come in ordinary
    /// buffers and are copied into its memory.
    private var handedOut = 0

    /// Makes `channel` read through a new target.
    static func install(on channel: any Channel) throws -> ReceiveTarget {
        let target = ReceiveTarget()
        let options = channel.syncOptions!
        try options.setOption(.maxMessagesPerRead, value: UInt(readsPerEvent))
        try options.setOption(.recvAllocator, value: FrameReceiveAllocator(target: target))
        return target
    }

    fileprivate var nextBufferSize: Int? { window == nil ? between.nextBufferSize() : nil }

    fileprivate func buffer(_ allocator: ByteBufferAllocator) -> ByteBuffer {
        defer { handedOut = min(handedOut + 1, Self.readsPerEvent) }
        guard let window, handedOut == Self.readsPerEvent else { return between.buffer(allocator: allocator) }
        return ByteBuffer(takingOwnershipOf: window, allocator: Self.borrowing, readerIndex: 0, writerIndex: 0)
    }

    /// Sizes between-frames reads by how full they came; a read into a window says nothing of those.
    /// (NIO records a read before passing it on, so the window is still set after one into it.)
    fileprivate func record(_ bytes: Int) {
        if window == nil { _ = between.record(actualReadBytes: bytes) }
    }

    /// Memory for a frame of `size` bytes, from malloc: `owning` frees it once it is a `ByteBuffer`.
    static func frameMemory(_ size: Int) -> UnsafeMutableRawBufferPointer {
        guard let bytes = malloc(size) else { fatalError("out of memory for a frame of \(size) bytes") }
        return UnsafeMutableRawBufferPointer(start: bytes, count: size)
    }

    /// Frees frame memory that never became a `ByteBuffer` (its connection ended first).
    static func release(_ memory: UnsafeMutableRawBufferPointer) {
        free(memory.baseAddress)
    }

    /// The allocator of frame memory handed to a `ByteBuffer` once the frame is whole.
    static let owning = ByteBufferAllocator(
        allocate: { malloc($0) }, reallocate: { realloc($0, $2) }, deallocate: { free($0) },
        copy: { _ = memcpy($0, $1, $2) })

    /// A window borrows its frame's memory: it is never freed through the window, and a window that
    /// had to grow or be copied would no longer be the frame's memory, which is a bug.
    private static let borrowing = ByteBufferAllocator(
        allocate: { _ in fatalError("a receive window was asked to allocate") },
        reallocate: { _, _, _ in fatalError("a receive window was asked to grow") },
        deallocate: { _ in }, copy: { _ = memcpy($0, $1, $2) })
}

/// NIO's view of a `ReceiveTarget`.
struct FrameReceiveAllocator: RecvByteBufferAllocator {
    let target: ReceiveTarget

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer { target.buffer(allocator) }

    /// None while a frame is being filled, so NIO asks for a buffer instead of reusing one.
    func nextBufferSize() -> Int? { target.nextBufferSize }

    /// Always true ("may grow"): NIO then never reuses its pooled buffer without asking the size first.
    mutating func record(actualReadBytes: Int) -> Bool {
        target.record(actualReadBytes)
        return true
    }
}
