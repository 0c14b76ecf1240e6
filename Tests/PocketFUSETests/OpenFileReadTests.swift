import NIOCore
import PocketProtocol
import Testing

@testable import PocketFUSE

/// `OpenFile`'s read path against the in-memory fake: read-ahead and the block cache, counted by
/// the blocks the fake is asked for.
@Suite struct OpenFileReadTests {
    static let block = Harness.blockSize

    /// A committed file of `blocks` blocks (the last one short), opened with `settings`.
    private func committedFile(
        blocks: Int, settings: OpenFile.Settings
    ) async -> (Harness, OpenFile, bytes: [UInt8], ids: [BlockID]) {
        let harness = Harness()
        let bytes = pattern(blocks * Self.block - 10)
        await harness.backend.seed("f", bytes)
        let ids = await harness.backend.files["f"]!.blocks.map(\.id)
        return (harness, await harness.open(settings: settings), bytes, ids)
    }

    @Test func sequentialReadsFetchAheadAndFetchEachBlockOnce() async throws {
        let (harness, file, bytes, ids) = await committedFile(
            blocks: 40, settings: Harness.settings { $0.readAheadBlocks = 4 })
        let backend = harness.backend
        #expect(try await file.readBytes(at: 0, length: Self.block) == Array(bytes[..<Self.block]))
        await harness.spawner.drain()
        #expect(await backend.fetched == Array(ids[0...4]), "the read fetches its block, then the next four")

        // Reads of 4 KiB, as the kernel might send them: each block is fetched before it is read.
        // (Checked before the read: the read-ahead a read starts runs beside it, so counting the
        // fetches after it would race with that.)
        for offset in stride(from: Self.block, to: bytes.count, by: 4096) {
            #expect(
                await backend.fetched.contains(ids[offset / Self.block]), "the block at \(offset) was fetched ahead")
            let read = try await file.readBytes(at: offset, length: 4096)
            #expect(read == Array(bytes[offset..<min(offset + 4096, bytes.count)]))
            await harness.spawner.drain()
        }
        #expect(await backend.fetched == ids, "every block fetched once, in order")

        #expect(try await file.readBytes(at: 0, length: bytes.count) == bytes)
        #expect(await backend.fetched == ids, "cached blocks are not fetched again")
        #expect(try await file.readBytes(at: bytes.count, length: 100) == [], "nothing past the end")
    }

    @Test func readsThatJumpFetchOnlyWhatTheyTouch() async throws {
        let (harness, file, bytes, ids) = await committedFile(
            blocks: 30, settings: Harness.settings { $0.readAheadBlocks = 4 })
        let backend = harness.backend
        let offset = 20 * Self.block + 100
        #expect(try await file.readBytes(at: offset, length: 50) == Array(bytes[offset..<offset + 50]))
        let back = 5 * Self.block - 10  // straddles blocks 4 and 5
        #expect(try await file.readBytes(at: back, length: 20) == Array(bytes[back..<back + 20]))
        await harness.spawner.drain()
        #expect(await backend.fetched == [ids[20], ids[4], ids[5]], "no read-ahead without a sequential read")
    }

    @Test func theBlockCacheKeepsTheLatestBlocksOnly() async throws {
        let settings = Harness.settings {
            $0.readAheadBlocks = 0
            $0.cachedBlocks = 4
        }
        let (harness, file, bytes, ids) = await committedFile(blocks: 6, settings: settings)
        for index in 0..<6 {
            let start = index * Self.block
            let read = try await file.readBytes(at: start, length: Self.block)
            #expect(read == Array(bytes[start..<min(start + Self.block, bytes.count)]))
        }
        let last = 5 * Self.block
        #expect(try await file.readBytes(at: last, length: 10) == Array(bytes[last..<last + 10]))
        #expect(await harness.backend.fetched == ids, "the last blocks read are still cached")
        #expect(try await file.readBytes(at: 0, length: 10) == Array(bytes[..<10]))
        #expect(await harness.backend.fetched == ids + [ids[0]], "the oldest block was dropped from the cache")
    }

    @Test func writesOverACommittedFileReadThroughAndFetchOnlyTheBlocksTheyPartlyCover() async throws {
        let (harness, file, bytes, ids) = await committedFile(
            blocks: 4, settings: Harness.settings { $0.readAheadBlocks = 0 })
        var model = bytes
        let patch = pattern(Self.block + 200, seed: 9)
        let offset = Self.block  // block 1 whole, the start of block 2
        try await file.write(at: offset, patch)
        model.replaceSubrange(offset..<offset + patch.count, with: patch)
        #expect(await harness.backend.fetched == [ids[2]], "a block written whole is not fetched")
        #expect(try await file.readBytes(at: 0, length: model.count) == model)
        try await file.flush()
        #expect(try await harness.backend.content("f") == model)
        let layout = try #require(await harness.backend.files["f"]).blocks.map(\.id)
        #expect(layout[0] == ids[0] && layout[3] == ids[3], "untouched blocks are kept")
        #expect(layout[1] != ids[1] && layout[2] != ids[2])
        await harness.close(file)
    }
}
