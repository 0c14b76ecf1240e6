import NIOCore
import PocketProtocol
import Synchronization

/// The DRAM tier: blocks live in memory, each in a buffer of exactly its size.
public final class DRAMBlockStore: BlockStore {
    public let tier = Tier.dram
    public let capacityBytes: UInt64
    public let blocksOnIO = false

    private struct State {
        var jobs: [JobID: [BlockID: ByteBuffer]] = [:]
        var usedBytes: UInt64 = 0
        var blockCount: UInt64 = 0
    }

    private let state = Mutex(State())
    private let allocator = ByteBufferAllocator()

    public init(capacityBytes: UInt64) {
        self.capacityBytes = capacityBytes
    }

    public func write(job: JobID, blocks: [WriteBlocks.Block]) throws(PocketError) {
        // Copy out of the receive buffer before taking the lock: the frame's buffer is shared with
        // whatever else arrived on the connection and must not be pinned by stored blocks.
        let copies = blocks.map { block in
            var copy = allocator.buffer(capacity: block.data.readableBytes)
            copy.writeImmutableBuffer(block.data)
            return (block.id, copy)
        }
        try state.withLock { state throws(PocketError) in
            // Check everything first, then change the job's blocks in place: a copy of the job's
            // dictionary per batch would make writes slower the more a job holds.
            var added: UInt64 = 0
            var replaced: UInt64 = 0
            var newBlocks: UInt64 = 0
            var seen = Set<BlockID>()
            for (id, data) in copies {
                added += UInt64(data.readableBytes)
                if !seen.insert(id).inserted {
                    throw PocketError(.invalidArgument, "block \(id) appears twice in one write")
                }
                if let old = state.jobs[job]?[id] {
                    replaced += UInt64(old.readableBytes)
                } else {
                    newBlocks += 1
                }
            }
            let after = state.usedBytes - replaced + added
            guard after <= capacityBytes else {
                throw PocketError(
                    .noSpace,
                    "\(added) bytes do not fit: \(state.usedBytes) of \(capacityBytes) bytes used")
            }
            for (id, data) in copies { state.jobs[job, default: [:]][id] = data }
            state.usedBytes = after
            state.blockCount += newBlocks
        }
    }

    public func read(job: JobID, ranges: [BlockRange]) throws(PocketError) -> [ByteBuffer] {
        try state.withLock { state throws(PocketError) in
            guard let jobBlocks = state.jobs[job] else {
                throw PocketError(.notFound, "no blocks of job \(job) on this server")
            }
            return try ranges.map { range throws(PocketError) in
                guard let block = jobBlocks[range.id] else {
                    throw PocketError(.notFound, "block \(range.id) of job \(job) is not on this server")
                }
                let offset = Int(range.offset)
                guard offset <= block.readableBytes else {
                    throw PocketError(.invalidArgument, "offset \(offset) beyond block of \(block.readableBytes) bytes")
                }
                let length = min(Int(min(range.length, UInt32(Int32.max))), block.readableBytes - offset)
                return block.getSlice(at: block.readerIndex + offset, length: length)!
            }
        }
    }

    public func free(job: JobID, ids: [BlockID]) -> FreeReply {
        state.withLock { state in
            // Taken out of the table so it is changed in place, not copied.
            guard var jobBlocks = state.jobs.removeValue(forKey: job) else { return FreeReply(blocks: 0, bytes: 0) }
            var reply = FreeReply(blocks: 0, bytes: 0)
            for id in ids {
                if let old = jobBlocks.removeValue(forKey: id) {
                    reply.blocks += 1
                    reply.bytes += UInt64(old.readableBytes)
                }
            }
            if !jobBlocks.isEmpty { state.jobs[job] = jobBlocks }
            state.usedBytes -= reply.bytes
            state.blockCount -= reply.blocks
            return reply
        }
    }

    public func freeJob(_ job: JobID) -> FreeReply {
        let removed = state.withLock { state in
            guard let jobBlocks = state.jobs.removeValue(forKey: job) else { return [BlockID: ByteBuffer]() }
            let bytes = jobBlocks.values.reduce(0) { $0 + UInt64($1.readableBytes) }
            state.usedBytes -= bytes
            state.blockCount -= UInt64(jobBlocks.count)
            return jobBlocks
        }
        // The buffers are released here, outside the lock.
        return FreeReply(
            blocks: UInt64(removed.count), bytes: removed.values.reduce(0) { $0 + UInt64($1.readableBytes) })
    }

    public func usage() -> (usedBytes: UInt64, blockCount: UInt64) {
        state.withLock { ($0.usedBytes, $0.blockCount) }
    }
}
