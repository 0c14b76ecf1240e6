import AsyncAlgorithms
import NIOCore
import PocketProtocol

extension PocketJob {
    /// Streams an object of any size into `key`: `body` writes through the writer, and the object
    /// appears whole when `body` returns (or not at all if it throws). Full batches upload while
    /// `body` goes on producing; memory stays bounded by the client's in-flight limit.
    public func write(
        _ key: String, persist: Bool = false, _ body: (ObjectWriter) async throws -> Void
    ) async throws {
        let uploads = AsyncChannel<[(BlockRef, ByteBuffer)]>()
        let writer = ObjectWriter(job: self, uploads: uploads)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let transfer = self.transfer
            group.addTask {
                defer { uploads.finish() }
                for await batch in uploads {
                    try await transfer.write(batch)
                }
            }
            do {
                try await body(writer)
                try await writer.flush(final: true)
                uploads.finish()
                try await group.waitForAll()
                try await writer.commit(key, persist: persist)
            } catch {
                uploads.finish()
                group.cancelAll()
                await abort(writer.reserved + writer.used)
                throw error
            }
        }
    }

    /// Reads the object at `key` in order, a block at a time, with bounded read-ahead.
    public func read(
        _ key: String, deleteAfterRead: Bool = false, _ consume: (ByteBuffer) async throws -> Void
    ) async throws {
        let location = try await locate(key, deleteAfterRead: deleteAfterRead)
        if let inline = location.inline {
            if inline.readableBytes > 0 { try await consume(inline) }
            return
        }
        try await transfer.read(location, consume: consume)
        if deleteAfterRead { _ = try await call(Delete(auth: auth, path: key)) }
    }
}

/// Collects written bytes into blocks and hands full batches to the uploader.
public final class ObjectWriter {
    private let job: PocketJob
    private let uploads: AsyncChannel<[(BlockRef, ByteBuffer)]>
    private var current: ByteBuffer
    private var batch: [(BlockRef, ByteBuffer)] = []
    fileprivate var reserved: [BlockRef] = []
    fileprivate var used: [BlockRef] = []
    public private(set) var size = 0

    init(job: PocketJob, uploads: AsyncChannel<[(BlockRef, ByteBuffer)]>) {
        self.job = job
        self.uploads = uploads
        current = ByteBufferAllocator().buffer(capacity: job.blockSize)
    }

    public func write(_ data: ByteBuffer) async throws {
        var data = data
        size += data.readableBytes
        while data.readableBytes > 0 {
            let room = job.blockSize - current.readableBytes
            if current.readableBytes == 0, data.readableBytes >= job.blockSize {
                // A whole block: pass a view of the caller's buffer, no copy.
                try await emit(data.readView(length: job.blockSize)!)
                continue
            }
            var piece = data.readSlice(length: min(room, data.readableBytes))!
            current.writeBuffer(&piece)
            if current.readableBytes == job.blockSize {
                try await emit(current)
                current = ByteBufferAllocator().buffer(capacity: job.blockSize)
            }
        }
    }

    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await write(ByteBuffer(bytes: bytes))
    }

    private func emit(_ block: ByteBuffer) async throws {
        if reserved.isEmpty {
            // 1, 2, 4, … blocks up to the chunk: a small object reserves no more than it uses, so
            // the blocks handed back at the end do not skew the job's round-robin placement.
            let chunk = min(max(used.count, 1), Int(job.client.configuration.allocationChunk))
            reserved = try await job.allocate(chunk).reversed()
        }
        let ref = reserved.removeLast()
        used.append(ref)
        batch.append((ref, block))
        if batch.count >= job.client.configuration.batchBlocks { try await flush(final: false) }
    }

    fileprivate func flush(final: Bool) async throws {
        if final, current.readableBytes > 0, !(used.isEmpty && current.readableBytes <= job.inlineLimit) {
            let last = current
            current = ByteBuffer()
            try await emit(last)
        }
        guard !batch.isEmpty else { return }
        let sending = batch
        batch = []
        await uploads.send(sending)
    }

    fileprivate func commit(_ key: String, persist: Bool) async throws {
        if used.isEmpty {
            try await job.put(key, current, persist: persist)
        } else {
            _ = try await job.call(
                CommitObject(auth: job.auth, path: key, persist: persist, size: UInt64(size), blocks: used))
        }
        await job.abort(reserved)
        reserved = []
    }
}
