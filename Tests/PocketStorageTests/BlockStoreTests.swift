import Foundation
import NIOCore
import Testing

@testable import PocketProtocol
@testable import PocketStorage

/// What every tier's store must do.
@Suite struct BlockStoreTests {
    func block(_ id: BlockID, _ count: Int, _ byte: UInt8 = 1) -> WriteBlocks.Block {
        WriteBlocks.Block(id: id, data: ByteBuffer(repeating: byte, count: count))
    }

    @Test(arguments: StoreKind.allCases)
    func blocksReadBackWholeOrInRanges(_ kind: StoreKind) throws {
        let store = try kind.make(capacity: 64 << 10)
        var data = ByteBuffer()
        data.writeBytes((0..<1000).map { UInt8($0 % 256) })
        try store.write(job: 1, blocks: [WriteBlocks.Block(id: 5, data: data), block(6, 1024, 9)])
        #expect(try store.read(job: 1, ranges: [BlockRange(id: 5)]) == [data])
        let part = try store.read(job: 1, ranges: [BlockRange(id: 5, offset: 10, length: 5), BlockRange(id: 6)])
        #expect(Array(part[0].readableBytesView) == [10, 11, 12, 13, 14])
        #expect(part[1] == ByteBuffer(repeating: 9, count: 1024))
        #expect(store.usage().usedBytes == 2024)
        #expect(store.usage().blockCount == 2)
    }

    @Test(arguments: StoreKind.allCases)
    func aBatchThatDoesNotFitChangesNothing(_ kind: StoreKind) throws {
        let store = try kind.make(capacity: 3 << 10)
        try store.write(job: 1, blocks: [block(1, 1000)])
        #expect { try store.write(job: 1, blocks: [block(2, 1000), block(3, 1000), block(4, 1000)]) } throws: {
            ($0 as? PocketError)?.code == .noSpace
        }
        #expect(store.usage().blockCount == 1)
        #expect { try store.read(job: 1, ranges: [BlockRange(id: 2)]) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }
        #expect(try store.read(job: 1, ranges: [BlockRange(id: 1)])[0] == ByteBuffer(repeating: 1, count: 1000))
    }

    @Test(arguments: StoreKind.allCases)
    func freedSpaceIsReusableAtOnce(_ kind: StoreKind) throws {
        let store = try kind.make(capacity: 4 << 10)
        try store.write(job: 1, blocks: (1...4).map { block($0, 1024, UInt8($0)) })
        #expect { try store.write(job: 2, blocks: [block(1, 10)]) } throws: { ($0 as? PocketError)?.code == .noSpace }
        #expect(store.free(job: 1, ids: [2, 3]) == FreeReply(blocks: 2, bytes: 2048))
        try store.write(job: 2, blocks: [block(1, 1024, 7), block(2, 1024, 8)])
        #expect(
            try store.read(job: 1, ranges: [BlockRange(id: 1), BlockRange(id: 4)]) == [
                ByteBuffer(repeating: 1, count: 1024), ByteBuffer(repeating: 4, count: 1024),
            ])
        #expect(try store.read(job: 2, ranges: [BlockRange(id: 2)]) == [ByteBuffer(repeating: 8, count: 1024)])
        #expect(store.freeJob(1).blocks == 2)
        #expect(store.freeJob(2).bytes == 2048)
        #expect(store.usage().usedBytes == 0)
    }

    @Test(arguments: StoreKind.allCases)
    func replacingABlockKeepsOneCopy(_ kind: StoreKind) throws {
        let store = try kind.make(capacity: 2 << 10)
        try store.write(job: 1, blocks: [block(1, 1000, 1)])
        try store.write(job: 1, blocks: [block(1, 500, 2)])
        #expect(store.usage() == (500, 1))
        #expect(try store.read(job: 1, ranges: [BlockRange(id: 1)])[0] == ByteBuffer(repeating: 2, count: 500))
        try store.write(job: 1, blocks: [block(2, 1000, 3)])
    }

    @Test(arguments: StoreKind.allCases)
    func jobsAreSeparate(_ kind: StoreKind) throws {
        let store = try kind.make(capacity: 4 << 10)
        try store.write(job: 1, blocks: [block(1, 10)])
        #expect { try store.read(job: 2, ranges: [BlockRange(id: 1)]) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }
        #expect(store.free(job: 2, ids: [1]).blocks == 0)
        #expect(store.usage().blockCount == 1)
    }

    @Test func fileSlotsRefuseBlocksLargerThanASlot() throws {
        let store = try StoreKind.ssd.make(capacity: 4 << 10)
        #expect { try store.write(job: 1, blocks: [block(1, 2000)]) } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
    }
}
