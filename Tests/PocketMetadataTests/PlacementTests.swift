import NIOCore
import Testing

@testable import PocketMetadata
@testable import PocketProtocol

@Suite struct BlockPlacerTests {
    @Test(arguments: [
        [0.5, 0.5], [0.25, 0.75], [1.0 / 3, 1.0 / 3, 1.0 / 3], [0.1, 0.2, 0.7], [1.0],
    ])
    func blocksFollowTheWeights(_ weights: [Double]) {
        let map = WeightMap(weights.enumerated().map { .init(server: ServerID($0.offset + 1), weight: $0.element) })
        var placer = BlockPlacer(weightMap: map)
        let total = 1200
        var counts: [ServerID: Int] = [:]
        for _ in 0..<total { counts[placer.next { _ in true }!, default: 0] += 1 }
        for entry in map.entries {
            let expected = Double(total) * entry.weight
            #expect(abs(Double(counts[entry.server, default: 0]) - expected) <= 1, "server \(entry.server)")
        }
    }

    @Test func anyRunOfBlocksIsSpreadEvenly() {
        var placer = BlockPlacer(weightMap: .even([1, 2]))
        let picks = (0..<10).map { _ in placer.next { _ in true }! }
        #expect(picks.filter { $0 == 1 }.count == 5)
        for index in 1..<picks.count { #expect(picks[index] != picks[index - 1], "even maps alternate") }
    }

    @Test func ineligibleServersAreSkippedAndOthersTakeTheirShare() {
        var placer = BlockPlacer(weightMap: WeightMap([.init(server: 1, weight: 0.5), .init(server: 2, weight: 0.5)]))
        let picks = (0..<100).map { _ in placer.next { $0 != 1 }! }
        #expect(Set(picks) == [2])
        #expect(placer.next { _ in false } == nil)
    }

    @Test func zeroWeightsGetNothing() {
        var placer = BlockPlacer(weightMap: WeightMap([.init(server: 1, weight: 0), .init(server: 2, weight: 1)]))
        #expect(Set((0..<50).map { _ in placer.next { _ in true }! }) == [2])
    }
}

@Suite struct MetadataStateTests {
    let auth = JobAuth(job: 7, token: "secret")

    func state(
        capacities: [UInt64] = [4 * 65536, 4 * 65536], weightMap: WeightMap? = nil, replication: UInt8? = nil
    ) -> MetadataState {
        var state = MetadataState(inlineCapacity: 1000)
        state.blockSize = 65536
        state.inlineLimit = 100
        for (index, capacity) in capacities.enumerated() {
            let id = ServerID(index + 1)
            state.servers[id] = StorageServerEntry(
                id: id, address: "127.0.0.1:\(index + 1)", tier: .dram, state: .active, capacityBytes: capacity)
        }
        state.assign(
            assignment(
                token: "secret", weightMap: weightMap ?? .even(capacities.indices.map { ServerID($0 + 1) }),
                hints: JobHints(replication: replication)),
            now: 0)
        return state
    }

    @Test func wrongTokensAndUnknownJobsAreRefused() {
        let state = state()
        #expect { try state.authorize(JobAuth(job: 7, token: "guess")) } throws: {
            ($0 as? PocketError)?.code == .unauthorized
        }
        #expect { try state.authorize(JobAuth(job: 8, token: "secret")) } throws: {
            ($0 as? PocketError)?.code == .unknownJob
        }
    }

    @Test func allocationStopsAtCapacityAndIsAllOrNothing() throws {
        var state = state()
        #expect(try state.allocate(auth, count: 6).count == 6)
        #expect { try state.allocate(auth, count: 3) } throws: { ($0 as? PocketError)?.code == .noSpace }
        #expect(try state.allocate(auth, count: 2).count == 2, "the failed request reserved nothing")
    }

    @Test func deadServersAreSkipped() throws {
        var state = state()
        state.servers[1]!.state = .dead
        #expect(Set(try state.allocate(auth, count: 4).map(\.server)) == [2])
        state.servers[2]!.state = .dead
        #expect { try state.allocate(auth, count: 1) } throws: { ($0 as? PocketError)?.code == .unavailable }
    }

    @Test func commitNeedsExactlyTheBlocksItWasGiven() throws {
        var state = state()
        let blocks = try state.allocate(auth, count: 2)
        #expect {
            try state.commit(
                CommitObject(auth: auth, path: "f", persist: false, size: 65536 * 3, blocks: blocks), now: 1)
        } throws: { ($0 as? PocketError)?.code == .invalidArgument }
        let forged = [blocks[0], BlockRef(id: 999, server: 1)]
        #expect {
            try state.commit(
                CommitObject(auth: auth, path: "f", persist: false, size: 65536 * 2, blocks: forged), now: 1)
        } throws: { ($0 as? PocketError)?.code == .invalidArgument }
        #expect(
            try state.commit(CommitObject(auth: auth, path: "f", persist: false, size: 65537, blocks: blocks), now: 1)
                .isEmpty)
        #expect(state.jobs[7]!.pending.isEmpty)
    }

    @Test func deletingReturnsSpaceForNewAllocations() throws {
        var state = state(capacities: [2 * 65536])
        let blocks = try state.allocate(auth, count: 2)
        _ = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 2 * 65536, blocks: blocks), now: 1)
        #expect { try state.allocate(auth, count: 1) } throws: { ($0 as? PocketError)?.code == .noSpace }
        #expect(try state.delete(Delete(auth: auth, path: "f"), now: 2).count == 2)
        #expect(try state.allocate(auth, count: 2).count == 2)
    }

    @Test func inlineObjectsRespectTheLimitAndCapacity() throws {
        var state = state()
        let small = ByteBuffer(repeating: 1, count: 100)
        let request = PutInline(auth: auth, path: "a", persist: false, data: small)
        _ = try state.putInline(request, data: small, now: 1)
        let big = ByteBuffer(repeating: 1, count: 101)
        #expect { try state.putInline(request, data: big, now: 1) } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
        for index in 1..<10 {
            _ = try state.putInline(
                PutInline(auth: auth, path: "f\(index)", persist: false, data: small), data: small, now: 1)
        }
        #expect {
            try state.putInline(PutInline(auth: auth, path: "x", persist: false, data: small), data: small, now: 1)
        } throws: { ($0 as? PocketError)?.code == .noSpace }
    }

    @Test func deleteAfterReadRemovesInlineObjects() throws {
        var state = state()
        let data = ByteBuffer(string: "hello")
        _ = try state.putInline(PutInline(auth: auth, path: "a", persist: false, data: data), data: data, now: 1)
        #expect(try state.get(GetObject(auth: auth, path: "a", deleteAfterRead: true), now: 2).inline == data)
        #expect { try state.get(GetObject(auth: auth, path: "a"), now: 3) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }
    }

    @Test func droppedJobsKeepPersistedObjectsForTheirNextIncarnation() throws {
        var state = state()
        let blocks = try state.allocate(auth, count: 3)
        _ = try state.commit(
            CommitObject(auth: auth, path: "keep", persist: true, size: 65536, blocks: [blocks[0]]), now: 1)
        _ = try state.commit(
            CommitObject(auth: auth, path: "tmp", persist: false, size: 65536, blocks: [blocks[1]]), now: 1)
        let dropped = state.drop(7, now: 2)
        let (released, kept) = try #require(dropped)
        #expect(kept == 1)
        #expect(Set(released) == [blocks[1], blocks[2]], "ephemeral and pending blocks are released")
        state.assign(assignment(token: "new", weightMap: .even([1, 2])), now: 3)
        let location = try state.get(GetObject(auth: JobAuth(job: 7, token: "new"), path: "keep"), now: 4)
        #expect(location.blocks == [blocks[0]])
    }

    @Test func aCommitMayKeepTheFilesOwnBlocksAndHoles() throws {
        var state = state()
        let first = try state.allocate(auth, count: 3)
        _ = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 3 * 65536, blocks: first), now: 1)
        // Rewrite the middle block, punch the last into a hole, grow by one more hole.
        let fresh = try state.allocate(auth, count: 1)
        let layout = [first[0], fresh[0], .hole, .hole]
        let released = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 4 * 65536, blocks: layout), now: 2)
        #expect(Set(released) == [first[1], first[2]])
        #expect(try state.get(GetObject(auth: auth, path: "f"), now: 3).blocks == layout)
        // Blocks of another file cannot be borrowed.
        let other = try state.allocate(auth, count: 1)
        _ = try state.commit(CommitObject(auth: auth, path: "g", persist: false, size: 65536, blocks: other), now: 4)
        #expect {
            try state.commit(CommitObject(auth: auth, path: "f", persist: false, size: 65536, blocks: other), now: 5)
        } throws: { ($0 as? PocketError)?.code == .invalidArgument }
        #expect {
            try state.commit(
                CommitObject(auth: auth, path: "f", persist: false, size: 2 * 65536, blocks: [first[0], first[0]]),
                now: 5)
        } throws: { ($0 as? PocketError)?.code == .invalidArgument }
    }
}

func assignment(token: String, weightMap: WeightMap, hints: JobHints = JobHints()) -> AssignJob {
    AssignJob(
        capability: Capability(job: 7, rights: .control, blocks: Capability.everyBlock, expiry: 0), jobID: 7,
        name: "job", token: token, hints: hints, weightMap: weightMap)
}
