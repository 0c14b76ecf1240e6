import NIOCore
import PocketProtocol

/// Block-level access to a job's files, for front-ends that keep their own write buffers (the FUSE
/// daemon): read byte ranges of a known layout, reserve and write blocks, commit a new layout.
extension PocketJob {
    /// Where the bytes of `key` are now.
    public func layout(_ key: String) async throws -> ObjectLocation {
        let location = try await call(GetObject(auth: auth, path: key))
        transfer.remember(location.capability)
        return location
    }

    /// Bytes `offset..<offset+length` of a file with `blocks` and `size` (clipped to the size).
    public func read(blocks: [BlockRef], size: UInt64, offset: UInt64, length: Int) async throws -> ByteBuffer {
        let end = min(size, offset + UInt64(length))
        guard end > offset else { return ByteBuffer() }
        let blockSize = UInt64(self.blockSize)
        var pieces: [BlockTransfer.Piece] = []
        var position = offset
        while position < end {
            let index = Int(position / blockSize)
            let within = position % blockSize
            let count = min(blockSize - within, end - position)
            let block = index < blocks.count ? blocks[index] : .hole
            pieces.append(.init(block: block, offset: Int(within), length: Int(count)))
            position += count
        }
        let parts = try await transfer.read(pieces)
        if parts.count == 1 { return parts[0] }
        var result = ByteBufferAllocator().buffer(capacity: Int(end - offset))
        for var part in parts { result.writeBuffer(&part) }
        return result
    }

    /// Reserves `count` new blocks placed by the job's weight map.
    public func reserveBlocks(_ count: Int) async throws -> [BlockRef] {
        try await allocate(count)
    }

    /// Writes blocks to their storage servers (batched, in parallel).
    public func writeBlocks(_ blocks: [(BlockRef, ByteBuffer)]) async throws {
        try await transfer.write(blocks)
    }

    /// Makes `blocks` (reserved, kept from the current file, or holes) the content of `key`, and
    /// returns the object's new change time.
    @discardableResult
    public func commit(_ key: String, size: UInt64, blocks: [BlockRef], persist: Bool = false) async throws -> Int64 {
        try await call(CommitObject(auth: auth, path: key, persist: persist, size: size, blocks: blocks)).changed
    }

    /// Returns reserved blocks that will not be committed.
    public func release(_ blocks: [BlockRef]) async {
        await abort(blocks)
    }

    public func create(_ key: String, mode: UInt32, exclusive: Bool) async throws -> EntryInfo {
        try await call(Create(auth: auth, path: key, mode: mode, exclusive: exclusive))
    }

    public func makeSymlink(_ key: String, target: String) async throws -> EntryInfo {
        try await call(MakeSymlink(auth: auth, path: key, target: target))
    }

    public func setAttributes(_ key: String, mode: UInt32? = nil, modified: Int64? = nil) async throws -> EntryInfo {
        try await call(SetAttributes(auth: auth, path: key, mode: mode, modified: modified))
    }

    public func delete(_ key: String, kind: Delete.Kind) async throws {
        _ = try await call(Delete(auth: auth, path: key, kind: kind))
    }

    public func rename(_ from: String, to: String, noReplace: Bool) async throws {
        _ = try await call(Rename(auth: auth, from: from, to: to, noReplace: noReplace))
    }
}

extension PocketJob {
    /// The first `length` bytes of each block, one buffer per block (holes and short blocks read as
    /// zeros), fetched with one request per server.
    public func readBlocks(_ blocks: [(block: BlockRef, length: Int)]) async throws -> [ByteBuffer] {
        try await transfer.read(blocks.map { BlockTransfer.Piece(block: $0.block, offset: 0, length: $0.length) })
    }
}
