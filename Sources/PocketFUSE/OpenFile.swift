import Glibc
import NIOCore
import PocketProtocol

/// A file's content as this mount sees it while the file is open: the committed layout, plus dirty
/// blocks in memory and written blocks (uploaded, not yet committed). Writes land in memory and full
/// blocks upload in the background (write-behind) with bounded memory; `flush` uploads the rest and
/// commits the new layout, which is when other mounts see it (close-to-open). Sequential reads fetch
/// blocks ahead. Blocks are written once under fresh ids, so cached block bytes never go stale.
actor OpenFile {
    struct Settings: Sendable {
        var blockSize: Int
        var inlineLimit: Int
        var maxDirtyBytes = 64 << 20
        var uploadBatch = 16
        var readAheadBlocks = 32
        var cachedBlocks = 96
        var reserveChunk = 64

        /// The largest size a file can have: as many blocks as one commit can name (a frame's worth
        /// of block references, less room for the rest of the request). A size or a write's end
        /// past it gets EFBIG before anything is sized by it: a layout of 15 billion blocks, from
        /// `truncate -s 999999999999999`, once aborted the daemon. Holes below it cost no blocks.
        var maxFileSize: UInt64 {
            UInt64((FrameDecoder.defaultMaxFrameSize - (64 << 10)) / BlockRef.wireSize) * UInt64(blockSize)
        }
    }

    private struct Dirty {
        var data: ByteBuffer
        var version: UInt64
    }

    let backend: any OpenFileBackend
    let settings: Settings
    private let budget: DirtyBudget
    /// Dirty bytes this file has counted against the mount-wide budget.
    private var counted = 0
    private let spawn: @Sendable (@escaping @Sendable () async -> Void) -> Void
    private(set) var path: String
    private(set) var size: UInt64
    private var committed: [BlockRef]
    private var inline: ByteBuffer?
    private var dirty: [Int: Dirty] = [:]
    private var written: [Int: BlockRef] = [:]
    private var uploading: [Int: UInt64] = [:]
    private var uploadsInFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var reserve: [BlockRef] = []
    /// Blocks named by commits still under way (how many name each), and those of them replaced or
    /// cut meanwhile: they stay the commit's, and are given back only if it fails.
    private var committing: [BlockID: Int] = [:]
    private var releaseAfterCommit: [BlockRef] = []
    private var flushing = false
    private var flushQueue: [CheckedContinuation<Void, Never>] = []
    /// Blocks this file has taken from reservations, which sizes the next one.
    private var taken = 0
    private var version: UInt64 = 0
    private var failure: PocketError?
    private(set) var changed = false
    private var unlinked = false
    private var cache: [BlockID: ByteBuffer] = [:]
    private var cacheOrder: [BlockID] = []
    private var fetching: Set<BlockID> = []
    private var lastReadEnd: UInt64 = 0
    /// What the file held when this mount last opened it or committed it.
    private(set) var committedContent: CommittedContent

    init(
        backend: any OpenFileBackend, path: String, location: ObjectLocation, settings: Settings, budget: DirtyBudget,
        spawn: @escaping @Sendable (@escaping @Sendable () async -> Void) -> Void
    ) {
        self.backend = backend
        self.budget = budget
        self.path = path
        self.settings = settings
        self.spawn = spawn
        size = location.size
        committed = location.blocks
        inline = location.inline
        committedContent = CommittedContent(location)
    }

    private var blockSize: UInt64 { UInt64(settings.blockSize) }

    func moved(to path: String) { self.path = path }
    func markUnlinked() { unlinked = true }

    // MARK: Writing

    func write(at offset: UInt64, _ data: ByteBuffer) async throws -> Int {
        try reportFailure()
        let limit = settings.maxFileSize
        guard offset <= limit, UInt64(data.readableBytes) <= limit - offset else { throw FuseError(EFBIG) }
        let end = offset + UInt64(data.readableBytes)
        if offset > size { try await materializeTail() }
        var position = offset
        while position < end {
            let index = Int(position / blockSize)
            let within = Int(position % blockSize)
            let count = Int(min(blockSize - UInt64(within), end - position))
            if dirty[index] == nil {
                // Bytes the write leaves alone must come from the current content first.
                let blockEnd = min(UInt64(index + 1) * blockSize, max(size, end))
                let coversAll = within == 0 && position + UInt64(count) >= blockEnd
                if coversAll {
                    // The write is the block's whole content: keep its bytes as they came, no copy.
                    let slice = data.getSlice(at: data.readerIndex + Int(position - offset), length: count)!
                    version += 1
                    dirty[index] = Dirty(data: slice, version: version)
                    position += UInt64(count)
                    continue
                }
                try await makeDirty(index)
            }
            let slice = data.getSlice(at: data.readerIndex + Int(position - offset), length: count)!
            Self.overwrite(&dirty[index]!.data, at: within, with: slice)
            version += 1
            dirty[index]!.version = version
            position += UInt64(count)
        }
        size = max(size, end)
        changed = true
        scheduleUploads(includePartial: false)
        account()
        // Back-pressure: a writer waits for its uploads while this file, or the whole mount, holds
        // too much unsent data.
        while dirtyBytes > settings.maxDirtyBytes || budget.exceeded, uploadsInFlight > 0 {
            await waitForUpload()
        }
        return data.readableBytes
    }

    /// Sets the size; bytes past the old end read as zeros.
    func truncate(to newSize: UInt64) async throws {
        try reportFailure()
        guard newSize <= settings.maxFileSize else { throw FuseError(EFBIG) }
        if newSize > size {
            try await materializeTail()
        } else if newSize < size {
            let keep = Int((newSize + blockSize - 1) / blockSize)
            for index in dirty.keys where index >= keep { dirty.removeValue(forKey: index) }
            let dropped = written.filter { $0.key >= keep }
            for index in dropped.keys { written.removeValue(forKey: index) }
            release(Array(dropped.values))
            // Stored bytes past the new end are no longer the file's: growing it must read zeros there.
            if committed.count > keep { committed.removeLast(committed.count - keep) }
            if let inline, inline.readableBytes > Int(newSize) {
                self.inline = inline.getSlice(at: inline.readerIndex, length: Int(newSize))
            }
            let valid = Int(newSize - UInt64(max(keep - 1, 0)) * blockSize)
            if keep > 0, let data = dirty[keep - 1]?.data, data.readableBytes > valid {
                dirty[keep - 1]!.data.moveWriterIndex(to: data.readerIndex + valid)
                version += 1
                dirty[keep - 1]!.version = version
            }
        }
        size = newSize
        changed = true
        account()
    }

    /// Uploads what is left and commits the layout. Reports (once) any error of earlier uploads.
    /// Writes that arrive while it waits stay pending for the next flush. Returns the change time
    /// the commit gave the file (nil when there was nothing to commit).
    @discardableResult
    func flush() async throws -> Int64? {
        // One flush at a time: each commits the layout it built, and two commits in flight at once
        // could land in either order, the older layout last.
        while flushing { await withCheckedContinuation { flushQueue.append($0) } }
        flushing = true
        defer {
            flushing = false
            if !flushQueue.isEmpty { flushQueue.removeFirst().resume() }
        }
        return try await flushAlone()
    }

    /// Flush waiting for another one to end (what tests watch for).
    var flushesWaiting: Int { flushQueue.count }

    private func flushAlone() async throws -> Int64? {
        try reportFailure()
        guard changed else { return nil }
        if unlinked {
            discard()
            return nil
        }
        let changedAt: Int64
        let snapshot = version
        if size <= UInt64(settings.inlineLimit) {
            var content = ByteBufferAllocator().buffer(capacity: Int(size))
            for piece in try await read(at: 0, length: Int(size), prefetch: false) {
                content.writeImmutableBuffer(piece)
            }
            guard version == snapshot else { return try await flushAlone() }
            changedAt = try await backend.put(path, content, persist: false)
            guard version == snapshot else { return try await flushAlone() ?? changedAt }
            release(Array(written.values))
            written = [:]
            dirty = [:]
            account()
            committed = []
            inline = content
            committedContent = CommittedContent(size: size, blocks: [], inline: content)
        } else {
            if let inline, size > 0, dirty[0] == nil, written[0] == nil {
                var block = ByteBufferAllocator().buffer(capacity: settings.blockSize)
                block.writeImmutableBuffer(
                    inline.getSlice(at: inline.readerIndex, length: min(inline.readableBytes, Int(size)))!)
                version += 1
                dirty[0] = Dirty(data: block, version: version)
            }
            repeat {
                scheduleUploads(includePartial: true)
                while uploadsInFlight > 0 { await waitForUpload() }
                try reportFailure()
            } while !dirty.isEmpty
            let count = Int((size + blockSize - 1) / blockSize)
            let layout = (0..<count).map { index in
                written[index] ?? (index < committed.count ? committed[index] : .hole)
            }
            let layoutSize = size
            let layoutVersion = version
            let named = layout.filter { !$0.isHole }.map(\.id)
            for id in named { committing[id, default: 0] += 1 }
            do {
                changedAt = try await backend.commit(path, size: layoutSize, blocks: layout, persist: false)
                endCommit(named, committed: true)
            } catch {
                endCommit(named, committed: false)
                throw error
            }
            committed = layout
            committedContent = CommittedContent(size: layoutSize, blocks: layout.map(\.id), inline: nil)
            for (index, ref) in written where index < layout.count && layout[index] == ref {
                written.removeValue(forKey: index)
            }
            inline = nil
            guard version == layoutVersion else { return changedAt }
        }
        changed = false
        return changedAt
    }

    /// Gives back everything held for uncommitted writes (last close, or an unlinked file).
    func discard() {
        release(Array(written.values) + reserve)
        written = [:]
        reserve = []
        dirty = [:]
        changed = false
        account()
    }

    private func reportFailure() throws {
        if let failure {
            self.failure = nil
            throw failure
        }
    }

    private var dirtyBytes: Int { dirty.values.reduce(0) { $0 + $1.data.readableBytes } }

    /// Brings the mount-wide count up to date with this file's dirty bytes.
    private func account() {
        let now = dirtyBytes
        budget.add(now - counted)
        counted = now
    }

    /// Makes the last partial block dirty (cut at the current size), so growing the file never
    /// exposes bytes a shorter file left behind.
    private func materializeTail() async throws {
        guard size % blockSize != 0 else { return }
        try await makeDirty(Int(size / blockSize))
    }

    /// Makes block `index` dirty from its current content. The content is fetched across a
    /// suspension, so it is only used if nothing replaced the block meanwhile.
    private func makeDirty(_ index: Int) async throws {
        while dirty[index] == nil {
            let source = storedBlock(index)
            let sizeBefore = size
            let base = try await baseContent(index)
            if dirty[index] == nil, storedBlock(index) == source, size == sizeBefore {
                version += 1
                dirty[index] = Dirty(data: base, version: version)
            }
        }
    }

    /// Block `index` as it is now (before any dirty bytes), cut at the file's size.
    private func baseContent(_ index: Int) async throws -> ByteBuffer {
        let start = UInt64(index) * blockSize
        let valid = size > start ? Int(min(blockSize, size - start)) : 0
        var block = ByteBufferAllocator().buffer(capacity: settings.blockSize)
        guard valid > 0 else { return block }
        if let inline, index == 0, written[0] == nil {
            block.writeImmutableBuffer(
                inline.getSlice(at: inline.readerIndex, length: min(valid, inline.readableBytes))!)
        } else if let ref = written[index] ?? (index < committed.count ? committed[index] : nil), !ref.isHole {
            var fetched = try await fetch([(ref, valid)])[0]
            block.writeBuffer(&fetched)
        }
        if block.readableBytes < valid { block.writeRepeatingByte(0, count: valid - block.readableBytes) }
        return block
    }

    private static func overwrite(_ block: inout ByteBuffer, at offset: Int, with data: ByteBuffer) {
        if block.readableBytes < offset { block.writeRepeatingByte(0, count: offset - block.readableBytes) }
        let overlap = min(data.readableBytes, block.readableBytes - offset)
        if overlap > 0 {
            block.setBuffer(data.getSlice(at: data.readerIndex, length: overlap)!, at: block.readerIndex + offset)
        }
        if overlap < data.readableBytes {
            block.writeImmutableBuffer(
                data.getSlice(at: data.readerIndex + overlap, length: data.readableBytes - overlap)!)
        }
    }

    // MARK: Uploads

    private func scheduleUploads(includePartial: Bool) {
        let ready = dirty.keys.sorted().filter { index in
            let block = dirty[index]!
            return uploading[index] != block.version
                && (includePartial || block.data.readableBytes == settings.blockSize)
        }
        for start in stride(from: 0, to: ready.count, by: settings.uploadBatch) {
            let batch = ready[start..<min(start + settings.uploadBatch, ready.count)].map { index in
                (index: index, version: dirty[index]!.version, data: dirty[index]!.data)
            }
            for item in batch { uploading[item.index] = item.version }
            uploadsInFlight += 1
            spawn { await self.upload(batch) }
        }
    }

    private func upload(_ batch: [(index: Int, version: UInt64, data: ByteBuffer)]) async {
        var refs: [BlockRef] = []
        do {
            refs = try await takeReserved(batch.count)
            try await backend.writeBlocks(Array(zip(refs, batch.map(\.data))))
            finish(batch, refs, nil)
        } catch {
            finish(batch, refs, PocketError(wrappingFUSE: error))
        }
    }

    private func finish(
        _ batch: [(index: Int, version: UInt64, data: ByteBuffer)], _ refs: [BlockRef], _ error: PocketError?
    ) {
        var stale: [BlockRef] = []
        for (position, item) in batch.enumerated() {
            if uploading[item.index] == item.version { uploading.removeValue(forKey: item.index) }
            guard position < refs.count else { continue }
            if error == nil, dirty[item.index]?.version == item.version {
                dirty.removeValue(forKey: item.index)
                if let old = written[item.index] { stale.append(old) }
                written[item.index] = refs[position]
            } else {
                stale.append(refs[position])
            }
        }
        if let error { failure = failure ?? error }
        account()
        release(stale)
        uploadsInFlight -= 1
        let resumed = waiters
        waiters = []
        for waiter in resumed { waiter.resume() }
        if error == nil { scheduleUploads(includePartial: false) }
    }

    private func waitForUpload() async {
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Writers and flushes waiting for an upload to finish (what tests watch for back-pressure).
    var waitingForUploads: Int { waiters.count }

    private func takeReserved(_ count: Int) async throws -> [BlockRef] {
        while reserve.count < count {
            // As many as the file took so far, up to the chunk: a small file reserves what it
            // needs, so the blocks it hands back do not skew the job's round-robin placement.
            let chunk = min(max(taken, 1), settings.reserveChunk)
            reserve += try await backend.reserveBlocks(max(count - reserve.count, chunk))
        }
        taken += count
        let blocks = Array(reserve.prefix(count))
        reserve.removeFirst(count)
        return blocks
    }

    /// Ends a commit of the blocks `named`. Those set aside while it was away are the file's if it
    /// committed (the server frees them when a later commit replaces them), and given back if not.
    private func endCommit(_ named: [BlockID], committed: Bool) {
        for id in named {
            committing[id]! -= 1
            if committing[id] == 0 { committing.removeValue(forKey: id) }
        }
        let done = releaseAfterCommit.filter { committing[$0.id] == nil }
        releaseAfterCommit.removeAll { committing[$0.id] == nil }
        if !committed { release(done) }
    }

    private func release(_ blocks: [BlockRef]) {
        let held = blocks.filter { committing[$0.id] != nil }
        releaseAfterCommit += held
        let blocks = held.isEmpty ? blocks : blocks.filter { committing[$0.id] == nil }
        guard !blocks.isEmpty else { return }
        let backend = self.backend
        spawn { await backend.release(blocks) }
    }

    // MARK: Reading

    /// Bytes `offset..<offset+length` (cut at the size), as slices of the blocks that hold them:
    /// the reply gathers them, so a read copies nothing here.
    func read(at offset: UInt64, length: Int, prefetch: Bool = true) async throws -> [ByteBuffer] {
        // Fetch until every stored block is at hand; the state may change while a fetch is away,
        // so the bytes are put together only after a check that needed no suspension.
        while true {
            let end = min(size, offset + UInt64(length))
            guard end > offset else { return [] }
            let first = Int(offset / blockSize)
            let last = Int((end - 1) / blockSize)
            var missing: [(BlockRef, Int)] = []
            for index in first...last where dirty[index] == nil {
                if let ref = storedBlock(index), cache[ref.id] == nil { missing.append((ref, validLength(index))) }
            }
            if !missing.isEmpty {
                _ = try await fetch(missing)
                continue
            }
            let result = assemble(first...last, from: offset, to: end)
            if prefetch {
                if offset <= lastReadEnd, end > lastReadEnd { readAhead(from: last + 1) }
                lastReadEnd = end
            }
            return result
        }
    }

    /// Bytes `offset..<end` from dirty blocks, cached stored blocks, inline bytes and zeros.
    private func assemble(_ blocks: ClosedRange<Int>, from offset: UInt64, to end: UInt64) -> [ByteBuffer] {
        var result: [ByteBuffer] = []
        result.reserveCapacity(blocks.count)
        for index in blocks {
            let start = UInt64(index) * blockSize
            let from = Int(max(offset, start) - start)
            let to = Int(min(end, start + blockSize) - start)
            let source: ByteBuffer?
            if let block = dirty[index] {
                source = block.data
            } else if let ref = storedBlock(index) {
                source = cache[ref.id]
            } else if index == 0, let inline, written[0] == nil {
                source = inline
            } else {
                source = nil
            }
            let available = max(0, min(to, source?.readableBytes ?? 0) - from)
            if available > 0, let source {
                result.append(source.getSlice(at: source.readerIndex + from, length: available)!)
            }
            var zeros = to - from - available
            while zeros > 0 {
                let count = min(zeros, Self.zeros.readableBytes)
                result.append(Self.zeros.getSlice(at: 0, length: count)!)
                zeros -= count
            }
        }
        return result
    }

    /// Zeros for holes and for the bytes past a short block's end, shared by every read.
    private static let zeros = ByteBuffer(repeating: 0, count: 1 << 20)

    /// The stored block behind `index`, if it has one (written beats committed; holes have none).
    private func storedBlock(_ index: Int) -> BlockRef? {
        let ref = written[index] ?? (index < committed.count ? committed[index] : nil)
        guard let ref, !ref.isHole else { return nil }
        return ref
    }

    private func validLength(_ index: Int) -> Int {
        let start = UInt64(index) * blockSize
        return size > start ? Int(min(blockSize, size - start)) : 0
    }

    /// Fetches whole blocks (cut at `length`) into the cache and returns them.
    private func fetch(_ blocks: [(BlockRef, Int)]) async throws -> [ByteBuffer] {
        let data = try await backend.readBlocks(blocks.map { (block: $0.0, length: $0.1) })
        for (block, bytes) in zip(blocks, data) { remember(block.0.id, bytes) }
        return data
    }

    private func remember(_ id: BlockID, _ bytes: ByteBuffer) {
        if cache.updateValue(bytes, forKey: id) == nil { cacheOrder.append(id) }
        while cacheOrder.count > settings.cachedBlocks {
            cache.removeValue(forKey: cacheOrder.removeFirst())
        }
    }

    /// Starts fetching the blocks after a sequential read, so the next reads find them here.
    private func readAhead(from index: Int) {
        let count = Int((size + blockSize - 1) / blockSize)
        var wanted: [(BlockRef, Int)] = []
        for next in index..<min(index + settings.readAheadBlocks, count) where dirty[next] == nil {
            if let ref = storedBlock(next), cache[ref.id] == nil, !fetching.contains(ref.id) {
                wanted.append((ref, validLength(next)))
            }
        }
        guard !wanted.isEmpty else { return }
        for (ref, _) in wanted { fetching.insert(ref.id) }
        let blocks = wanted
        spawn { await self.prefetch(blocks) }
    }

    private func prefetch(_ blocks: [(BlockRef, Int)]) async {
        _ = try? await fetch(blocks)
        for (ref, _) in blocks { fetching.remove(ref.id) }
    }

    /// The file's attributes as this mount knows them (uncommitted size included).
    var currentSize: UInt64 { size }
}

extension PocketError {
    init(wrappingFUSE error: any Error) {
        self = (error as? PocketError) ?? PocketError(.io, "\(error)")
    }
}
