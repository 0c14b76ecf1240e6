import NIOCore
import PocketProtocol
import PocketTestSupport
import Testing

@testable import PocketFUSE

/// `OpenFile`'s write path against the in-memory fake: write-behind, back-pressure, flush, faults,
/// truncation and holes. Uploads are held and let go by the test, so every interleaving is chosen.
@Suite struct OpenFileTests {
    static let block = Harness.blockSize

    @Test(arguments: [
        0, 100, Harness.inlineLimit, Harness.inlineLimit + 1, block, 5 * block, 3 * block + 12_345,
    ])
    func sequentialWritesCommitExactlyTheBytesWritten(size: Int) async throws {
        let harness = Harness()
        let file = await harness.open()
        let bytes = pattern(size)
        if size == 0 { try await file.write(at: 0, []) }
        // Chunks that do not line up with blocks, as a writer's buffer would not.
        for start in stride(from: 0, to: size, by: 10_000) {
            try await file.write(at: start, Array(bytes[start..<min(start + 10_000, size)]))
        }
        #expect(try await file.readBytes(at: 0, length: size + 10) == bytes)
        #expect(try await file.flush() != nil)

        let backend = harness.backend
        #expect(try await backend.content("f") == bytes)
        let committed = try #require(await backend.files["f"])
        if size <= Harness.inlineLimit {
            #expect(committed.blocks.isEmpty && committed.inline != nil, "a small file is stored inline")
        } else {
            #expect(committed.blocks.count == (size + Self.block - 1) / Self.block)
            for (index, block) in committed.blocks.enumerated() {
                let length = await backend.stored[block.id]?.readableBytes
                #expect(length == min(Self.block, size - index * Self.block), "block \(index) holds its bytes only")
            }
        }
        #expect(await file.committedContent == CommittedContent(await backend.location("f")))
        #expect(try await file.flush() == nil, "nothing is left to commit")
        await harness.close(file)
        let reopened = await harness.open()
        #expect(try await reopened.readBytes(at: 0, length: size) == bytes)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomOverwritesReadBackLikeAByteArray(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let harness = Harness()
        let file = await harness.open()
        var model: [UInt8] = []
        for step in 0..<160 {
            let offset = Int.random(in: 0...min(model.count + Self.block / 2, 6 * Self.block), using: &random)
            let count = Int.random(in: 1...(2 * Self.block + 100), using: &random)
            let bytes = pattern(count, seed: seed << 16 + UInt64(step))
            try await file.write(at: offset, bytes)
            if offset > model.count { model += [UInt8](repeating: 0, count: offset - model.count) }
            let overlap = min(bytes.count, model.count - offset)
            model.replaceSubrange(offset..<offset + overlap, with: bytes[0..<overlap])
            model += bytes[overlap...]

            let from = Int.random(in: 0...model.count + 10, using: &random)
            let length = Int.random(in: 0...(2 * Self.block), using: &random)
            let expected = from < model.count ? Array(model[from..<min(from + length, model.count)]) : []
            #expect(try await file.readBytes(at: from, length: length) == expected, "read at step \(step)")
            if step % 40 == 39 {
                try await file.flush()
                #expect(try await harness.backend.content("f") == model, "commit at step \(step)")
                #expect(try await file.readBytes(at: 0, length: model.count) == model, "read after the commit")
            }
        }
        try await file.flush()
        #expect(try await harness.backend.content("f") == model)
        await harness.close(file)
        #expect(try await harness.open().readBytes(at: 0, length: model.count) == model)
    }

    @Test func fullBlocksUploadBeforeFlushAndThePartialTailWaitsForIt() async throws {
        let harness = Harness()
        let file = await harness.open()
        let bytes = pattern(2 * Self.block + 100)
        try await file.write(at: 0, bytes)
        await harness.spawner.drain()
        #expect(await harness.backend.writes.joined().count == 2, "both full blocks are uploaded")
        #expect(await harness.backend.files["f"] == nil, "nothing is visible before the flush")
        #expect(harness.budget.inUse == 100, "only the tail is still held in memory")

        try await file.flush()
        #expect(await harness.backend.writes.joined().count == 3)
        #expect(try await harness.backend.content("f") == bytes)
        #expect(harness.budget.inUse == 0)
        await harness.close(file)
    }

    @Test func aWriteWaitsWhileTooMuchIsUnsentAndGoesOnWhenAnUploadFinishes() async throws {
        let harness = Harness()
        let backend = harness.backend
        let file = await harness.open(settings: Harness.settings { $0.maxDirtyBytes = Self.block })
        await backend.hold(.write)
        let first = pattern(Self.block, seed: 1)
        let second = pattern(Self.block, seed: 2)
        try await file.write(at: 0, first)  // at the limit, not over it: returns
        try await eventually("the first block's upload starts") { await backend.heldCount(.write) == 1 }

        let returned = Flag()
        let writing = Task {
            try await file.write(at: Self.block, second)
            returned.set()
        }
        try await eventually("the second write waits or returns") {
            if returned.isSet { return true }
            return await file.waitingForUploads == 1
        }
        #expect(!returned.isSet, "two unsent blocks are over the limit: the write waits")
        try await eventually("the second block's upload starts") { await backend.heldCount(.write) == 2 }
        #expect(!returned.isSet)

        await backend.letGo(.write, count: 1)
        try await writing.value
        #expect(returned.isSet)
        #expect(await file.waitingForUploads == 0)

        await backend.letGo(.write, stopHolding: true)
        try await file.flush()
        #expect(try await backend.content("f") == first + second)
        await harness.close(file)
    }

    @Test func flushWaitsForUploadsInFlightAndCommitsThemAll() async throws {
        let harness = Harness()
        let backend = harness.backend
        let file = await harness.open()
        await backend.hold(.write)
        let bytes = pattern(3 * Self.block + 500)
        for start in stride(from: 0, to: bytes.count, by: Self.block) {
            try await file.write(at: start, Array(bytes[start..<min(start + Self.block, bytes.count)]))
        }
        try await eventually("the three full blocks upload") { await backend.heldCount(.write) == 3 }

        let flushing = Task { try await file.flush() }
        try await eventually("the flush uploads the tail") { await backend.heldCount(.write) == 4 }
        #expect(await file.waitingForUploads == 1, "the flush waits for the uploads")
        #expect(await backend.callCount(.commit) == 0, "nothing is committed while blocks are unsent")

        await backend.letGo(.write, stopHolding: true)
        #expect(try await flushing.value != nil)
        #expect(await backend.callCount(.commit) == 1)
        #expect(try await backend.content("f") == bytes)
        await harness.close(file)
    }

    enum Fault: CaseIterable, Sendable {
        case noSpace, io, foreign
        struct Foreign: Error {}

        var error: any Error {
            switch self {
            case .noSpace: PocketError(.noSpace, "injected")
            case .io: PocketError(.io, "injected")
            case .foreign: Foreign()
            }
        }

        /// What the file reports: other errors than Pocket's own come back as I/O errors.
        var code: PocketError.Code { self == .noSpace ? .noSpace : .io }
    }

    @Test(arguments: Fault.allCases)
    func aFailedUploadIsReportedByTheNextWriteAndNothingIsCommitted(fault: Fault) async throws {
        let harness = Harness()
        let file = await harness.open()
        await harness.backend.failNext(.write, with: fault.error)
        let bytes = pattern(Self.block)
        try await file.write(at: 0, bytes)  // the upload fails in the background
        await harness.spawner.drain()

        let error = await #expect(throws: PocketError.self) { try await file.write(at: Self.block, [1, 2, 3]) }
        #expect(error?.code == fault.code)
        #expect(await harness.backend.files["f"] == nil)
        #expect(await file.currentSize == UInt64(Self.block), "the failed write stored nothing")

        // Reported once; the bytes are still in memory, so the next flush uploads and commits them.
        try await file.flush()
        #expect(try await harness.backend.content("f") == bytes)
        await harness.close(file)
    }

    @Test(arguments: Fault.allCases)
    func aFailedUploadFailsTheFlushAndCommitsNothing(fault: Fault) async throws {
        let harness = Harness()
        let file = await harness.open()
        await harness.backend.failNext(.write, with: fault.error)
        let bytes = pattern(2 * Self.block + 10)
        try await file.write(at: 0, bytes)

        let error = await #expect(throws: PocketError.self) { try await file.flush() }
        #expect(error?.code == fault.code)
        #expect(await harness.backend.callCount(.commit) == 0)
        #expect(await harness.backend.files["f"] == nil)

        try await file.flush()
        #expect(try await harness.backend.content("f") == bytes)
        await harness.close(file)
    }

    @Test func aFailedCommitLeavesTheOldContentAndTheNextFlushCommits() async throws {
        let harness = Harness()
        let old = pattern(3 * Self.block, seed: 5)
        await harness.backend.seed("f", old)
        let file = await harness.open()
        let bytes = pattern(Self.block + 7, seed: 6)
        try await file.write(at: Self.block, bytes)
        await harness.backend.failNext(.commit, with: PocketError(.unavailable, "injected"))

        let error = await #expect(throws: PocketError.self) { try await file.flush() }
        #expect(error?.code == .unavailable)
        #expect(try await harness.backend.content("f") == old)

        try await file.flush()
        let expected = Array(old[..<Self.block]) + bytes + Array(old[(2 * Self.block + 7)...])
        #expect(try await harness.backend.content("f") == expected)
        await harness.close(file)
    }

    @Test func truncatingWhileUploadsAreInFlightKeepsOnlyTheBytesBelowTheNewSize() async throws {
        let harness = Harness()
        let backend = harness.backend
        let file = await harness.open()
        await backend.hold(.write)
        let bytes = pattern(3 * Self.block)
        try await file.write(at: 0, bytes)
        try await eventually("the blocks upload") { await backend.heldCount(.write) == 1 }

        let cut = Self.block + Self.block / 2
        try await file.truncate(to: UInt64(cut))
        #expect(try await file.readBytes(at: 0, length: bytes.count) == Array(bytes[..<cut]))
        try await file.truncate(to: UInt64(4 * Self.block))
        let expected = Array(bytes[..<cut]) + [UInt8](repeating: 0, count: 4 * Self.block - cut)
        #expect(try await file.readBytes(at: 0, length: expected.count) == expected, "the grown part reads as zeros")

        await backend.letGo(.write, stopHolding: true)
        try await file.flush()
        #expect(try await backend.content("f") == expected)
        let layout = try #require(await backend.files["f"]).blocks
        #expect(layout.map(\.isHole) == [false, false, true, true], "the grown part is holes, not zeros stored")
        await harness.close(file)
    }

    @Test func growingAfterAShrinkNeverShowsTheBytesCutOff() async throws {
        let harness = Harness()
        let file = await harness.open()
        let bytes = pattern(2 * Self.block)
        try await file.write(at: 0, bytes)
        try await file.flush()

        try await file.truncate(to: UInt64(Self.block + 100))
        let tail: [UInt8] = [7, 7, 7]
        try await file.write(at: Self.block + Self.block / 2, tail)
        let expected =
            Array(bytes[..<(Self.block + 100)]) + [UInt8](repeating: 0, count: Self.block / 2 - 100) + tail
        #expect(try await file.readBytes(at: 0, length: 2 * Self.block) == expected)
        try await file.flush()
        #expect(try await harness.backend.content("f") == expected)

        try await file.truncate(to: 10)
        try await file.flush()
        #expect(await harness.backend.files["f"]?.inline != nil, "shrunk below the inline limit")
        try await file.truncate(to: 3000)
        let small = Array(bytes[..<10]) + [UInt8](repeating: 0, count: 2990)
        #expect(try await file.readBytes(at: 0, length: 4000) == small)
        try await file.flush()
        #expect(try await harness.backend.content("f") == small)
        await harness.close(file)
    }

    @Test func growingACommittedFileAfterAShrinkReadsZerosWhereTheCutBlocksWere() async throws {
        let harness = Harness()
        let old = pattern(4 * Self.block, seed: 3)
        await harness.backend.seed("f", old)
        let file = await harness.open()
        try await file.truncate(to: UInt64(Self.block))
        try await file.truncate(to: UInt64(3 * Self.block))
        var expected = Array(old[..<Self.block]) + [UInt8](repeating: 0, count: 2 * Self.block)
        #expect(try await file.readBytes(at: 0, length: 4 * Self.block) == expected)
        try await file.write(at: 3 * Self.block + 5, [9])
        expected += [0, 0, 0, 0, 0, 9]
        #expect(try await file.readBytes(at: 0, length: 4 * Self.block) == expected)
        try await file.flush()
        #expect(try await harness.backend.content("f") == expected)
        await harness.close(file)
    }

    @Test func growingAnInlineFileAfterAShrinkReadsZeros() async throws {
        let harness = Harness()
        let file = await harness.open()
        try await file.write(at: 0, pattern(100))
        try await file.flush()
        try await file.truncate(to: 0)
        try await file.truncate(to: 100)
        #expect(try await file.readBytes(at: 0, length: 100) == [UInt8](repeating: 0, count: 100))
        try await file.flush()
        #expect(try await harness.backend.content("f") == [UInt8](repeating: 0, count: 100))
        await harness.close(file)
    }

    @Test func aWritePastTheEndLeavesAHoleThatReadsAsZeros() async throws {
        let harness = Harness()
        let file = await harness.open()
        let head = pattern(1000, seed: 1)
        let far = pattern(50, seed: 2)
        try await file.write(at: 0, head)
        try await file.write(at: 3 * Self.block + 100, far)
        let expected = head + [UInt8](repeating: 0, count: 3 * Self.block + 100 - 1000) + far
        #expect(try await file.readBytes(at: 0, length: expected.count + 1) == expected)

        try await file.flush()
        #expect(try await harness.backend.content("f") == expected)
        let layout = try #require(await harness.backend.files["f"]).blocks
        #expect(layout.map(\.isHole) == [false, true, true, false])
        #expect(await harness.backend.writes.joined().count == 2, "holes are not written")
        await harness.close(file)
    }
}

/// Several files of one mount, and a file written while its own commit is under way.
@Suite struct OpenFileSharingTests {
    static let block = Harness.blockSize

    @Test func theMountWideBudgetHoldsBackAFileWhileTheMountIsOverIt() async throws {
        let harness = Harness(budgetLimit: Self.block)
        let backend = harness.backend
        let a = await harness.open("a")
        let b = await harness.open("b")
        await backend.hold(.write)
        try await a.write(at: 0, pattern(Self.block, seed: 1))  // the mount at its limit, not over it
        try await eventually("a's block uploads") { await backend.heldCount(.write) == 1 }
        #expect(harness.budget.inUse == Self.block && !harness.budget.exceeded)

        let returned = Flag()
        let writing = Task {
            try await b.write(at: 0, pattern(Self.block, seed: 2))
            returned.set()
        }
        try await eventually("b waits or returns") {
            if returned.isSet { return true }
            return await b.waitingForUploads == 1
        }
        #expect(!returned.isSet, "b waits: the mount holds two unsent blocks")
        #expect(harness.budget.exceeded)
        try await eventually("b's block uploads") { await backend.heldCount(.write) == 2 }

        // A file with nothing in flight has nothing to wait for, however full the mount.
        let c = await harness.open("c")
        try await c.write(at: 0, [1, 2, 3])

        await backend.letGo(.write, count: 1)  // a's
        try await eventually("a's upload is counted off") { harness.budget.inUse == Self.block + 3 }
        #expect(!returned.isSet, "b still waits: the mount is still over its limit")
        #expect(await b.waitingForUploads == 1)

        await backend.letGo(.write, stopHolding: true)  // b's
        try await writing.value
        #expect(harness.budget.inUse == 3)
        for file in [a, b, c] { try await file.flush() }
        #expect(harness.budget.inUse == 0)
        #expect(try await backend.content("b") == pattern(Self.block, seed: 2))
        for file in [a, b, c] { await harness.close(file) }
    }

    @Test func aBlockRewrittenWhileItsCommitIsInFlightIsNotGivenBackUnderIt() async throws {
        let harness = Harness()
        let backend = harness.backend
        let file = await harness.open()
        let first = pattern(2 * Self.block, seed: 1)
        try await file.write(at: 0, first)
        await harness.spawner.drain()
        await backend.hold(.commit)
        let flushing = Task { try await file.flush() }
        try await eventually("the commit is on its way") { await backend.heldCount(.commit) == 1 }

        // The block the commit names is replaced meanwhile; the commit still needs the old one.
        let second = pattern(Self.block, seed: 2)
        try await file.write(at: 0, second)
        await harness.spawner.drain()
        await backend.letGo(.commit, stopHolding: true)
        _ = try await flushing.value
        #expect(try await backend.content("f") == first)

        try await file.flush()
        #expect(try await backend.content("f") == second + first[Self.block...])
        await harness.close(file)
    }

    @Test func aSecondFlushWaitsForTheFirstSoCommitsLandInOrder() async throws {
        let harness = Harness()
        let backend = harness.backend
        let file = await harness.open()
        let first = pattern(2 * Self.block, seed: 1)
        try await file.write(at: 0, first)
        await backend.hold(.commit)
        let earlier = Task { try await file.flush() }
        try await eventually("the first commit is on its way") { await backend.heldCount(.commit) == 1 }

        // A write and a second flush (another handle's close, an fsync) while that commit is away.
        let second = pattern(3 * Self.block, seed: 2)
        try await file.write(at: 0, second)
        let later = Task { try await file.flush() }
        try await eventually("the second flush waits") { await file.flushesWaiting == 1 }
        #expect(await backend.heldCount(.commit) == 1, "no second commit while the first is in flight")

        await backend.letGo(.commit, stopHolding: true)
        _ = try await earlier.value
        _ = try await later.value
        #expect(try await backend.content("f") == second, "the newer layout is the one that stays")
        await harness.close(file)
    }
}
