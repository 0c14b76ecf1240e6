import Glibc
import NIOCore
import PocketProtocol
import Testing

@testable import PocketFUSE

/// Sizes and offsets as any local user can send them (`truncate -s`, `pwrite` at any off_t): past
/// what a file can hold they get EFBIG and change nothing; below it, a hole costs no blocks.
@Suite struct OpenFileLimitsTests {
    static let limit = Harness.settings().maxFileSize

    func isEFBIG(_ error: any Error) -> Bool { (error as? FuseError)?.errno == EFBIG }

    @Test func theLimitIsWhatOneCommitCanName() {
        // A commit names every block of the file: a frame's worth of block references.
        let references = UInt64(FrameDecoder.defaultMaxFrameSize) / UInt64(BlockRef.wireSize)
        #expect(Self.limit > 64 << 30, "sparse files of tens of GiB are fine")
        #expect(Self.limit <= references * UInt64(Harness.blockSize))
    }

    @Test(arguments: [Self.limit + 1, 999_999_999_999_999, UInt64(Int64.max), UInt64.max])
    func aSizeBeyondTheLimitIsEFBIGAndChangesNothing(size: UInt64) async throws {
        let harness = Harness()
        let file = await harness.open()
        let bytes = pattern(100_000)
        try await file.write(at: 0, bytes)
        await #expect { try await file.truncate(to: size) } throws: { isEFBIG($0) }
        #expect(await file.currentSize == UInt64(bytes.count))
        #expect(try await file.readBytes(at: 0, length: bytes.count + 1) == bytes)
        try await file.flush()
        #expect(try await harness.backend.content("f") == bytes)
        await harness.close(file)
    }

    @Test(arguments: [(Self.limit, 1), (Self.limit - 1, 2), (999_999_999_999_999, 10), (UInt64(Int64.max), 1)])
    func aWriteEndingBeyondTheLimitIsEFBIGAndChangesNothing(offset: UInt64, count: Int) async throws {
        let harness = Harness()
        let file = await harness.open()
        let bytes = pattern(1000)
        try await file.write(at: 0, bytes)
        await #expect { _ = try await file.write(at: offset, ByteBuffer(bytes: pattern(count, seed: 2))) } throws: {
            isEFBIG($0)
        }
        #expect(await file.currentSize == UInt64(bytes.count))
        try await file.flush()
        #expect(try await harness.backend.content("f") == bytes)
        await harness.close(file)
    }

    @Test func aLargeSparseFileCostsOnlyItsWrittenBlocks() async throws {
        let harness = Harness()
        let file = await harness.open()
        let size: UInt64 = 8 << 30
        try await file.truncate(to: size)
        let tail = pattern(10, seed: 3)
        _ = try await file.write(at: size - 10, ByteBuffer(bytes: tail))
        try await file.flush()
        let layout = try #require(await harness.backend.files["f"]).blocks
        #expect(UInt64(layout.count) * UInt64(Harness.blockSize) == size)
        #expect(layout.filter { !$0.isHole }.count == 1, "only the written block is stored")
        #expect(try await file.readBytes(at: Int(size) - 20, length: 30) == [UInt8](repeating: 0, count: 10) + tail)
        await harness.close(file)
    }
}
