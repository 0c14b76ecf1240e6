import NIOCore
import PocketProtocol

/// Where a storage server keeps its blocks: one tier, one capacity. Blocks are keyed by job and id,
/// so a job's blocks can be dropped at once.
public protocol BlockStore: Sendable {
    var tier: Tier { get }
    var capacityBytes: UInt64 { get }
    /// Stores every block or none: a batch that does not fit throws `noSpace` and changes nothing.
    /// A block id already stored is replaced.
    func write(job: JobID, blocks: [WriteBlocks.Block]) throws(PocketError)
    /// The requested ranges, in order; a missing block throws `notFound`.
    func read(job: JobID, ranges: [BlockRange]) throws(PocketError) -> [ByteBuffer]
    /// Frees the listed blocks; unknown ids are skipped.
    func free(job: JobID, ids: [BlockID]) -> FreeReply
    func freeJob(_ job: JobID) -> FreeReply
    func usage() -> (usedBytes: UInt64, blockCount: UInt64)
    /// Whether operations block on I/O, so the server runs them off its event loops.
    var blocksOnIO: Bool { get }
}
