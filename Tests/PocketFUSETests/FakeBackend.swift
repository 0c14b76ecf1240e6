import NIOCore
import PocketProtocol
import PocketTestSupport
import Synchronization
import Testing

@testable import PocketFUSE

/// An in-memory job for `OpenFile`: blocks by id, files by path, with the metadata server's rules
/// (only reserved or kept blocks may be committed; releasing frees only reserved blocks). Calls can
/// be made to fail once, or held until the test lets them go, so interleavings are chosen, not timed.
actor FakeBackend: OpenFileBackend {
    enum Operation: Hashable, Sendable { case put, reserve, write, commit, read }

    struct File: Equatable, Sendable {
        var size: UInt64
        var inline: ByteBuffer?
        var blocks: [BlockRef]
    }

    let blockSize: Int
    private(set) var files: [String: File] = [:]
    /// Bytes written to each live block.
    private(set) var stored: [BlockID: ByteBuffer] = [:]
    /// Reserved and neither committed nor released.
    private(set) var pending: Set<BlockID> = []
    private(set) var released: Set<BlockID> = []
    private(set) var calls: [Operation: Int] = [:]
    /// Every block id fetched by `readBlocks`, in order.
    private(set) var fetched: [BlockID] = []
    /// Block ids of each `writeBlocks` call, in order of arrival.
    private(set) var writes: [[BlockID]] = []
    private var failures: [Operation: [any Error]] = [:]
    private var holding: Set<Operation> = []
    private var held: [Operation: [CheckedContinuation<Void, Never>]] = [:]
    private var nextID: BlockID = 1

    init(blockSize: Int) {
        self.blockSize = blockSize
    }

    // MARK: Faults and holds

    /// The next call of `operation` fails with `error` (after any hold).
    func failNext(_ operation: Operation, with error: any Error) {
        failures[operation, default: []].append(error)
    }

    /// Calls of `operation` wait, from now on, until `letGo` releases them.
    func hold(_ operation: Operation) { holding.insert(operation) }

    /// Calls of `operation` waiting now.
    func heldCount(_ operation: Operation) -> Int { held[operation]?.count ?? 0 }

    /// Lets the oldest `count` held calls of `operation` go on (all of them when nil); with
    /// `stopHolding`, later calls no longer wait.
    func letGo(_ operation: Operation, count: Int? = nil, stopHolding: Bool = false) {
        if stopHolding { holding.remove(operation) }
        var waiting = held[operation] ?? []
        let resumed = Array(waiting.prefix(count ?? waiting.count))
        waiting.removeFirst(resumed.count)
        held[operation] = waiting
        for continuation in resumed { continuation.resume() }
    }

    private func enter(_ operation: Operation) async throws {
        calls[operation, default: 0] += 1
        if holding.contains(operation) {
            await withCheckedContinuation { held[operation, default: []].append($0) }
        }
        if var queued = failures[operation], !queued.isEmpty {
            let error = queued.removeFirst()
            failures[operation] = queued
            throw error
        }
    }

    // MARK: OpenFileBackend

    func put(_ key: String, _ data: ByteBuffer, persist: Bool) async throws -> Int64 {
        try await enter(.put)
        replace(key, with: File(size: UInt64(data.readableBytes), inline: data, blocks: []), keeping: [])
        return Int64(calls[.put, default: 0] + calls[.commit, default: 0])
    }

    func reserveBlocks(_ count: Int) async throws -> [BlockRef] {
        try await enter(.reserve)
        let blocks = (0..<count).map { offset in BlockRef(id: nextID + BlockID(offset), server: 1) }
        nextID += BlockID(count)
        pending.formUnion(blocks.map(\.id))
        return blocks
    }

    func writeBlocks(_ blocks: [(BlockRef, ByteBuffer)]) async throws {
        try await enter(.write)
        writes.append(blocks.map(\.0.id))
        for (block, data) in blocks {
            guard pending.contains(block.id) else {
                throw PocketError(.invalidArgument, "block \(block.id) is not reserved")
            }
            guard data.readableBytes <= blockSize else { throw PocketError(.invalidArgument, "block too long") }
            stored[block.id] = data
        }
    }

    func commit(_ key: String, size: UInt64, blocks: [BlockRef], persist: Bool) async throws -> Int64 {
        try await enter(.commit)
        let expected = (Int(size) + blockSize - 1) / blockSize
        guard blocks.count == expected else {
            throw PocketError(.invalidArgument, "\(size) bytes need \(expected) blocks, \(blocks.count) given")
        }
        let current = Set(files[key]?.blocks.map(\.id) ?? [])
        var kept = Set<BlockID>()
        for block in blocks where !block.isHole {
            guard pending.contains(block.id) || current.contains(block.id), kept.insert(block.id).inserted else {
                throw PocketError(.invalidArgument, "block \(block.id) is neither reserved nor part of '\(key)'")
            }
            guard stored[block.id] != nil else { throw PocketError(.invalidArgument, "block \(block.id) unwritten") }
        }
        pending.subtract(kept)
        replace(key, with: File(size: size, inline: nil, blocks: blocks), keeping: kept)
        return Int64(calls[.put, default: 0] + calls[.commit, default: 0])
    }

    func release(_ blocks: [BlockRef]) async {
        for block in blocks where pending.remove(block.id) != nil {
            stored.removeValue(forKey: block.id)
            released.insert(block.id)
        }
    }

    func readBlocks(_ blocks: [(block: BlockRef, length: Int)]) async throws -> [ByteBuffer] {
        try await enter(.read)
        return try blocks.map { block, length in
            guard !block.isHole else { return ByteBuffer(repeating: 0, count: length) }
            guard var data = stored[block.id] else { throw PocketError(.notFound, "block \(block.id)") }
            fetched.append(block.id)
            data = data.getSlice(at: data.readerIndex, length: min(length, data.readableBytes))!
            if data.readableBytes < length { data.writeRepeatingByte(0, count: length - data.readableBytes) }
            return data
        }
    }

    /// Frees the blocks of the file at `key` that its new content does not keep.
    private func replace(_ key: String, with file: File, keeping kept: Set<BlockID>) {
        for block in files[key]?.blocks ?? [] where !kept.contains(block.id) {
            stored.removeValue(forKey: block.id)
        }
        files[key] = file
    }

    // MARK: Looking at the result

    /// The committed bytes of the file at `key`.
    func content(_ key: String) throws -> [UInt8]? {
        guard let file = files[key] else { return nil }
        if let inline = file.inline { return Array(inline.readableBytesView) }
        var bytes: [UInt8] = []
        for (index, block) in file.blocks.enumerated() {
            let length = min(blockSize, Int(file.size) - index * blockSize)
            var piece = [UInt8](repeating: 0, count: length)
            if !block.isHole {
                let data = try #require(stored[block.id], "block \(block.id) of '\(key)' is stored")
                let valid = Array(data.readableBytesView.prefix(length))
                piece.replaceSubrange(0..<valid.count, with: valid)
            }
            bytes += piece
        }
        return bytes
    }

    /// Where the file at `key` is, as an open finds it.
    func location(_ key: String) -> ObjectLocation {
        let file = files[key] ?? File(size: 0, inline: nil, blocks: [])
        return ObjectLocation(size: file.size, blockSize: UInt32(blockSize), inline: file.inline, blocks: file.blocks)
    }

    /// Stores `bytes` at `key` as committed blocks, as another mount would have.
    func seed(_ key: String, _ bytes: [UInt8]) {
        var blocks: [BlockRef] = []
        for start in stride(from: 0, to: bytes.count, by: blockSize) {
            let block = BlockRef(id: nextID, server: 1)
            nextID += 1
            stored[block.id] = ByteBuffer(bytes: bytes[start..<min(start + blockSize, bytes.count)])
            blocks.append(block)
        }
        files[key] = File(size: UInt64(bytes.count), inline: nil, blocks: blocks)
    }

    func callCount(_ operation: Operation) -> Int { calls[operation, default: 0] }
}

/// Runs the work an `OpenFile` spawns (uploads, read-ahead, releases) as tasks the test can await.
final class Spawner: Sendable {
    private let tasks = Mutex<[Task<Void, Never>]>([])

    func spawn(_ work: @escaping @Sendable () async -> Void) {
        tasks.withLock { $0.append(Task { await work() }) }
    }

    /// Waits until every spawned task, and whatever they spawned, has finished.
    func drain() async {
        while let task = tasks.withLock({ $0.popLast() }) { await task.value }
    }
}

/// A file and the fake it runs on, with helpers that turn bytes into buffers and back.
struct Harness {
    static let blockSize = 64 << 10
    static let inlineLimit = 4 << 10

    let backend: FakeBackend
    let spawner = Spawner()
    let budget: DirtyBudget

    init(budgetLimit: Int = 1 << 30) {
        backend = FakeBackend(blockSize: Self.blockSize)
        budget = DirtyBudget(limit: budgetLimit)
    }

    static func settings(_ change: (inout OpenFile.Settings) -> Void = { _ in }) -> OpenFile.Settings {
        var settings = OpenFile.Settings(blockSize: blockSize, inlineLimit: inlineLimit)
        change(&settings)
        return settings
    }

    /// Opens `path` as it is in the fake now.
    func open(_ path: String = "f", settings: OpenFile.Settings = Harness.settings()) async -> OpenFile {
        let spawner = self.spawner
        return OpenFile(
            backend: backend, path: path, location: await backend.location(path), settings: settings,
            budget: budget
        ) { work in spawner.spawn(work) }
    }

    /// Closes `file` (gives back what it held) and checks that no reserved block is left over.
    func close(_ file: OpenFile, sourceLocation: SourceLocation = #_sourceLocation) async {
        await file.discard()
        await spawner.drain()
        #expect(
            await backend.pending.isEmpty, "every reserved block committed or released", sourceLocation: sourceLocation)
    }
}

extension OpenFile {
    func write(at offset: Int, _ bytes: [UInt8]) async throws {
        let written = try await write(at: UInt64(offset), ByteBuffer(bytes: bytes))
        #expect(written == bytes.count)
    }

    func readBytes(at offset: Int, length: Int, prefetch: Bool = true) async throws -> [UInt8] {
        try await read(at: UInt64(offset), length: length, prefetch: prefetch).flatMap { Array($0.readableBytesView) }
    }
}

/// `count` bytes that differ all along (no short period) and from `seed` to `seed`.
func pattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var random = SplitMix64(seed: seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

/// Set once, by a task the test started, when it got past a call that may wait.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}
