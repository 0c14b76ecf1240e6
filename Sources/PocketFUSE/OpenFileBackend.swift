import NIOCore
import PocketClient
import PocketProtocol

/// What an `OpenFile` needs from its job, and nothing more: small files stored whole, blocks
/// reserved, written and committed as a file's layout (or given back), and blocks read. `PocketJob`
/// is the real one; the tests run `OpenFile` against an in-memory fake with faults and held calls.
protocol OpenFileBackend: Sendable {
    /// Stores `data` (a whole file within the inline limit) at `key`; returns its new change time.
    func put(_ key: String, _ data: ByteBuffer, persist: Bool) async throws -> Int64
    /// Reserves `count` new blocks, to be written and then committed or released.
    func reserveBlocks(_ count: Int) async throws -> [BlockRef]
    /// Writes reserved blocks to their storage servers.
    func writeBlocks(_ blocks: [(BlockRef, ByteBuffer)]) async throws
    /// Makes `blocks` (reserved, kept from the current file, or holes) the content of `key`;
    /// returns its new change time.
    func commit(_ key: String, size: UInt64, blocks: [BlockRef], persist: Bool) async throws -> Int64
    /// Gives back reserved blocks that will not be committed (best effort).
    func release(_ blocks: [BlockRef]) async
    /// The first `length` bytes of each block (holes and short blocks read as zeros).
    func readBlocks(_ blocks: [(block: BlockRef, length: Int)]) async throws -> [ByteBuffer]
}

extension PocketJob: OpenFileBackend {}
