import Foundation
import NIOCore
import Testing

@testable import PocketProtocol
@testable import PocketStorage

/// The tiers' stores, for tests that every store must pass.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case dram, ssd, hdd

    var testDescription: String { rawValue }

    func make(capacity: UInt64) throws -> any BlockStore {
        switch self {
        case .dram:
            return DRAMBlockStore(capacityBytes: capacity)
        case .ssd, .hdd:
            let directory = URL(fileURLWithPath: NSTemporaryDirectory())
                .appendingPathComponent("pocket-store-\(rawValue)-\(UInt64.random(in: 0...UInt64.max))")
            // Slots of 1 KiB keep capacities in these tests byte-comparable with the DRAM store.
            return try FileBlockStore(
                tier: self == .ssd ? .ssd : .hdd, directory: directory, capacityBytes: capacity, slotSize: 1 << 10)
        }
    }
}

@Suite struct DRAMBlockStoreTests {
    func block(_ id: BlockID, _ count: Int, _ byte: UInt8 = 1) -> WriteBlocks.Block {
        WriteBlocks.Block(id: id, data: ByteBuffer(repeating: byte, count: count))
    }

    @Test func writtenBlocksReadBackWholeOrInRanges() throws {
        let store = DRAMBlockStore(capacityBytes: 1 << 20)
        var data = ByteBuffer()
        data.writeBytes((0..<1000).map { UInt8($0 % 256) })
        try store.write(job: 1, blocks: [WriteBlocks.Block(id: 5, data: data)])
        #expect(try store.read(job: 1, ranges: [BlockRange(id: 5)]) == [data])
        let part = try store.read(job: 1, ranges: [BlockRange(id: 5, offset: 10, length: 5)])
        #expect(Array(part[0].readableBytesView) == [10, 11, 12, 13, 14])
        let tail = try store.read(job: 1, ranges: [BlockRange(id: 5, offset: 990, length: 100)])
        #expect(tail[0].readableBytes == 10)
        #expect(store.usage().usedBytes == 1000)
    }

    @Test func aBatchThatDoesNotFitChangesNothing() throws {
        let store = DRAMBlockStore(capacityBytes: 3000)
        try store.write(job: 1, blocks: [block(1, 1000)])
        #expect { try store.write(job: 1, blocks: [block(2, 1000), block(3, 1500)]) } throws: {
            ($0 as? PocketError)?.code == .noSpace
        }
        #expect(store.usage().usedBytes == 1000)
        #expect(store.usage().blockCount == 1)
        #expect { try store.read(job: 1, ranges: [BlockRange(id: 2)]) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }
        #expect(try store.read(job: 1, ranges: [BlockRange(id: 1)])[0] == ByteBuffer(repeating: 1, count: 1000))
    }

    @Test func replacingABlockAccountsOnlyTheDifference() throws {
        let store = DRAMBlockStore(capacityBytes: 1500)
        try store.write(job: 1, blocks: [block(1, 1000)])
        try store.write(job: 1, blocks: [block(1, 1400, 2)])
        #expect(store.usage().usedBytes == 1400)
        #expect(store.usage().blockCount == 1)
    }

    @Test func jobsCannotSeeEachOthersBlocks() throws {
        let store = DRAMBlockStore(capacityBytes: 1 << 20)
        try store.write(job: 1, blocks: [block(1, 10)])
        #expect { try store.read(job: 2, ranges: [BlockRange(id: 1)]) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }
        #expect(store.free(job: 2, ids: [1]).blocks == 0)
    }

    @Test func freeingReleasesSpace() throws {
        let store = DRAMBlockStore(capacityBytes: 1 << 20)
        try store.write(job: 1, blocks: [block(1, 10), block(2, 20), block(3, 30)])
        try store.write(job: 2, blocks: [block(1, 40)])
        #expect(store.free(job: 1, ids: [1, 2, 99]) == FreeReply(blocks: 2, bytes: 30))
        #expect(store.freeJob(1) == FreeReply(blocks: 1, bytes: 30))
        #expect(store.usage().usedBytes == 40)
        #expect(store.freeJob(2) == FreeReply(blocks: 1, bytes: 40))
        #expect(store.usage().usedBytes == 0)
        #expect(store.usage().blockCount == 0)
    }

    @Test func duplicateIdsInOneBatchAreRefused() {
        let store = DRAMBlockStore(capacityBytes: 1 << 20)
        #expect { try store.write(job: 1, blocks: [block(1, 10), block(1, 10)]) } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
        #expect(store.usage().usedBytes == 0)
    }

    @Test func storedBlocksDoNotPinTheReceiveBuffer() throws {
        let store = DRAMBlockStore(capacityBytes: 1 << 20)
        let frame = ByteBuffer(repeating: 3, count: 4096)
        try store.write(job: 1, blocks: [WriteBlocks.Block(id: 1, data: frame.getSlice(at: 0, length: 100)!)])
        let stored = try store.read(job: 1, ranges: [BlockRange(id: 1)])[0]
        #expect(stored.capacity < 4096)
    }
}
