import Foundation
import NIOCore
import PocketProtocol
import Synchronization

/// The SSD and HDD tiers: blocks in one file under the data directory, each in a fixed-size slot
/// addressed by offset (slot × slot size), read and written with pread/pwrite. The index is in
/// memory: the store is ephemeral and starts empty, so the file is truncated when it opens.
public final class FileBlockStore: BlockStore {
    public let tier: Tier
    public let capacityBytes: UInt64
    public let blocksOnIO = true
    public let slotSize: Int
    private let fd: Int32
    private let path: String

    private struct Slot {
        var index: Int
        var length: Int
    }

    private struct State {
        var jobs: [JobID: [BlockID: Slot]] = [:]
        var freeSlots: [Int] = []
        var nextSlot = 0
        var usedBytes: UInt64 = 0
        var blockCount: UInt64 = 0
        /// Slots a read is using now; freeing them waits until the read is done, so a reused slot
        /// never hands a reader someone else's bytes.
        var pins: [Int: Int] = [:]
        var freeWhenUnpinned: Set<Int> = []
    }

    private let state = Mutex(State())
    private let slotCount: Int

    public init(tier: Tier, directory: URL, capacityBytes: UInt64, slotSize: Int = 64 << 10) throws {
        precondition(tier != .dram, "the DRAM tier keeps blocks in memory")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("blocks.\(tier)").path
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PocketError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        self.tier = tier
        self.slotSize = slotSize
        slotCount = Int(capacityBytes / UInt64(slotSize))
        self.capacityBytes = UInt64(slotCount) * UInt64(slotSize)
        // The file covers the whole capacity; its pages materialize as slots are written.
        guard ftruncate(fd, off_t(self.capacityBytes)) == 0 else {
            close(fd)
            throw PocketError(.io, "cannot size \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The block file goes with the store (its index was in memory); so does the directory, if empty.
    deinit {
        close(fd)
        unlink(path)
        rmdir((path as NSString).deletingLastPathComponent)
    }

    public func write(job: JobID, blocks: [WriteBlocks.Block]) throws(PocketError) {
        for block in blocks where block.data.readableBytes > slotSize {
            throw PocketError(
                .invalidArgument,
                "a block of \(block.data.readableBytes) bytes exceeds this server's \(slotSize)-byte slots")
        }
        guard Set(blocks.map(\.id)).count == blocks.count else {
            throw PocketError(.invalidArgument, "a block appears twice in one write")
        }
        // Every block goes to a fresh slot, so a concurrent reader of a replaced block still reads
        // its old bytes; the old slots are freed once the new ones are in the index.
        let slots = try state.withLock { state throws(PocketError) -> [Int] in
            let available = slotCount - state.nextSlot + state.freeSlots.count
            guard blocks.count <= available else {
                throw PocketError(.noSpace, "\(blocks.count) blocks do not fit: \(available) slots free")
            }
            return (0..<blocks.count).map { _ in
                if let slot = state.freeSlots.popLast() { return slot }
                state.nextSlot += 1
                return state.nextSlot - 1
            }
        }
        for (block, slot) in zip(blocks, slots) {
            let written = block.data.withUnsafeReadableBytes { bytes in
                pwrite(fd, bytes.baseAddress, bytes.count, off_t(slot) * off_t(slotSize))
            }
            guard written == block.data.readableBytes else {
                let reason = written < 0 ? String(cString: strerror(errno)) : "short write"
                state.withLock { $0.freeSlots += slots }
                throw PocketError(.io, "writing \(path): \(reason)")
            }
        }
        state.withLock { state in
            for (block, slot) in zip(blocks, slots) {
                let length = block.data.readableBytes
                if let old = state.jobs[job, default: [:]].updateValue(
                    Slot(index: slot, length: length), forKey: block.id)
                {
                    state.usedBytes -= UInt64(old.length)
                    Self.release(old.index, in: &state)
                } else {
                    state.blockCount += 1
                }
                state.usedBytes += UInt64(length)
            }
        }
    }

    public func read(job: JobID, ranges: [BlockRange]) throws(PocketError) -> [ByteBuffer] {
        let slots = try state.withLock { state throws(PocketError) -> [Slot] in
            let found = try ranges.map { range throws(PocketError) -> Slot in
                guard let slot = state.jobs[job]?[range.id] else {
                    throw PocketError(.notFound, "block \(range.id) of job \(job) is not on this server")
                }
                return slot
            }
            for slot in found { state.pins[slot.index, default: 0] += 1 }
            return found
        }
        defer { unpin(slots) }
        var result: [ByteBuffer] = []
        result.reserveCapacity(ranges.count)
        for (range, slot) in zip(ranges, slots) {
            let offset = Int(range.offset)
            guard offset <= slot.length else {
                throw PocketError(.invalidArgument, "offset \(offset) beyond block of \(slot.length) bytes")
            }
            let length = min(Int(min(range.length, UInt32(Int32.max))), slot.length - offset)
            var buffer = ByteBufferAllocator().buffer(capacity: length)
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { bytes in
                max(0, pread(fd, bytes.baseAddress, length, off_t(slot.index) * off_t(slotSize) + off_t(offset)))
            }
            guard read == length else { throw PocketError(.io, "reading \(path): \(String(cString: strerror(errno)))") }
            result.append(buffer)
        }
        return result
    }

    public func free(job: JobID, ids: [BlockID]) -> FreeReply {
        state.withLock { state in
            guard var slots = state.jobs.removeValue(forKey: job) else { return FreeReply(blocks: 0, bytes: 0) }
            var reply = FreeReply(blocks: 0, bytes: 0)
            for id in ids {
                guard let slot = slots.removeValue(forKey: id) else { continue }
                reply.blocks += 1
                reply.bytes += UInt64(slot.length)
                Self.release(slot.index, in: &state)
            }
            if !slots.isEmpty { state.jobs[job] = slots }
            state.usedBytes -= reply.bytes
            state.blockCount -= reply.blocks
            return reply
        }
    }

    public func freeJob(_ job: JobID) -> FreeReply {
        state.withLock { state in
            guard let slots = state.jobs.removeValue(forKey: job) else { return FreeReply(blocks: 0, bytes: 0) }
            var reply = FreeReply(blocks: UInt64(slots.count), bytes: 0)
            for slot in slots.values {
                reply.bytes += UInt64(slot.length)
                Self.release(slot.index, in: &state)
            }
            state.usedBytes -= reply.bytes
            state.blockCount -= reply.blocks
            return reply
        }
    }

    public func usage() -> (usedBytes: UInt64, blockCount: UInt64) {
        state.withLock { ($0.usedBytes, $0.blockCount) }
    }

    private static func release(_ slot: Int, in state: inout State) {
        if state.pins[slot] != nil {
            state.freeWhenUnpinned.insert(slot)
        } else {
            state.freeSlots.append(slot)
        }
    }

    private func unpin(_ slots: [Slot]) {
        state.withLock { state in
            for slot in slots {
                state.pins[slot.index]! -= 1
                if state.pins[slot.index] == 0 {
                    state.pins.removeValue(forKey: slot.index)
                    if state.freeWhenUnpinned.remove(slot.index) != nil { state.freeSlots.append(slot.index) }
                }
            }
        }
    }
}
