import PocketProtocol
import Testing

@testable import PocketClient

/// The client's write capabilities: found for any block of a held reservation, in or out of
/// order; the oldest are let go once the list is full, the newest kept.
@Suite struct CapabilityCacheTests {
    func reservation(_ first: BlockID, _ count: BlockID = 4) -> Capability {
        Capability(job: 1, rights: .write, blocks: first...(first + count - 1), expiry: Capability.now() + 600)
    }

    @Test func everyBlockOfAHeldReservationIsCovered() throws {
        let cache = CapabilityCache()
        for first in stride(from: 1, to: 400, by: 8) { cache.remember(reservation(BlockID(first))) }
        // Out of order: a reservation below the newest.
        cache.remember(reservation(5, 3))
        let found = try #require(cache.write([2, 6, 393, 7, 4]))
        #expect(found.map(\.blocks) == [1...4, 5...7, 393...396])
        #expect(cache.write([8]) == nil, "block 8 lies between reservations")
        #expect(cache.write([500]) == nil)
    }

    @Test func aFullListLetsTheOldestGo() throws {
        let cache = CapabilityCache()
        let count = CapabilityCache.maxWrites + 10
        for index in 0..<count { cache.remember(reservation(BlockID(index * 4 + 1))) }
        #expect(cache.write([1]) == nil, "the oldest is gone")
        let newest = BlockID((count - 1) * 4 + 1)
        #expect(cache.write([newest, newest - 4 * BlockID(CapabilityCache.maxWrites / 2 - 20)])?.count == 2)
    }

    @Test func aLapsedReservationIsNotUsed() {
        let cache = CapabilityCache()
        cache.remember(Capability(job: 1, rights: .write, blocks: 1...4, expiry: Capability.now() + 5))
        #expect(cache.write([1]) == nil, "within the margin before expiry")
    }
}
