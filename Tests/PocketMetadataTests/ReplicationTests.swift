import NIOCore
import Testing

@testable import PocketMetadata
@testable import PocketProtocol

/// Copies of blocks on distinct servers, and their repair when a server dies.
@Suite struct ReplicationTests {
    let auth = JobAuth(job: 7, token: "secret")
    let base = MetadataStateTests()

    @Test func everyBlockGetsDistinctServersAndCountsOnEach() throws {
        var state = base.state(capacities: [8 * 65536, 8 * 65536, 8 * 65536], replication: 2)
        let blocks = try state.allocate(auth, count: 6)
        for block in blocks {
            #expect(block.servers.count == 2)
            #expect(Set(block.servers).count == 2, "copies of block \(block.id) share a server")
        }
        #expect(state.allocated.values.reduce(0, +) == 12 * 65536, "each copy takes room")
        #expect(state.jobs[7]!.blockBytes == 12 * 65536)
        _ = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 6 * 65536, blocks: blocks), now: 1)
        let released = try state.delete(Delete(auth: auth, path: "f"), now: 2)
        #expect(Set(released) == Set(blocks))
        #expect(state.allocated.values.reduce(0, +) == 0)
    }

    @Test func copiesGoOutsideTheWeightMapWhenItIsTooSmall() throws {
        var state = base.state(capacities: [8 * 65536, 8 * 65536], weightMap: .even([1]), replication: 2)
        let blocks = try state.allocate(auth, count: 3)
        #expect(blocks.allSatisfy { $0.server == 1 && $0.replicas == [2] })
    }

    @Test func tooFewServersForTheCopiesIsAClearError() {
        var state = base.state(capacities: [8 * 65536, 8 * 65536], replication: 3)
        #expect(throws: PocketError.self) { try state.allocate(auth, count: 1) }
        #expect(state.allocated.values.reduce(0, +) == 0, "nothing reserved by a refused allocation")
    }

    @Test func lostCopiesAreRestoredOnAServerWithoutOne() throws {
        var state = base.state(
            capacities: [8 * 65536, 8 * 65536, 8 * 65536], weightMap: .even([1, 2]), replication: 2)
        let blocks = try state.allocate(auth, count: 4)
        _ = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 4 * 65536, blocks: blocks), now: 1)
        #expect(blocks.allSatisfy { Set($0.servers) == [1, 2] })
        state.servers[1]!.state = .dead
        let tasks = state.planRepairs(limit: 100)
        #expect(tasks.count == 4)
        #expect(tasks.allSatisfy { $0.lost == 1 && $0.target.id == 3 && $0.sources.map(\.id) == [2] })
        #expect(state.planRepairs(limit: 100).isEmpty, "planned copies are not planned twice while under way")
        let orphans = state.finishRepairs(made: tasks, failed: [])
        #expect(orphans.isEmpty)
        let location = try state.get(GetObject(auth: auth, path: "f"), now: 2)
        #expect(location.blocks.allSatisfy { $0.servers == [2, 3] }, "the survivor is read first, the new copy next")
        #expect(state.allocated[1, default: 0] == 0)
        #expect(state.allocated[3] == 4 * 65536)
    }

    @Test func aBlockWithNoLiveCopyIsNotPlannedAndFailedCopiesGiveBackTheirRoom() throws {
        var state = base.state(
            capacities: [8 * 65536, 8 * 65536, 8 * 65536], weightMap: .even([1, 2]), replication: 2)
        let blocks = try state.allocate(auth, count: 2)
        _ = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 2 * 65536, blocks: blocks), now: 1)
        state.servers[1]!.state = .dead
        let tasks = state.planRepairs(limit: 100)
        _ = state.finishRepairs(made: [], failed: tasks)
        #expect(state.allocated[3, default: 0] == 0)
        state.servers[2]!.state = .dead
        #expect(state.planRepairs(limit: 100).isEmpty)
    }

    @Test func aCopyOfABlockDeletedMeanwhileIsAnOrphan() throws {
        var state = base.state(
            capacities: [8 * 65536, 8 * 65536, 8 * 65536], weightMap: .even([1, 2]), replication: 2)
        let blocks = try state.allocate(auth, count: 1)
        _ = try state.commit(CommitObject(auth: auth, path: "f", persist: false, size: 65536, blocks: blocks), now: 1)
        state.servers[1]!.state = .dead
        let tasks = state.planRepairs(limit: 100)
        _ = try state.delete(Delete(auth: auth, path: "f"), now: 2)
        #expect(state.finishRepairs(made: tasks, failed: []).map(\.block) == [blocks[0].id])
        #expect(state.allocated[3, default: 0] == 0)
    }

    @Test func aCommitKeepingABlockRecordsItsCurrentCopies() throws {
        var state = base.state(
            capacities: [8 * 65536, 8 * 65536, 8 * 65536], weightMap: .even([1, 2]), replication: 2)
        let blocks = try state.allocate(auth, count: 1)
        _ = try state.commit(CommitObject(auth: auth, path: "f", persist: false, size: 65536, blocks: blocks), now: 1)
        state.servers[1]!.state = .dead
        _ = state.finishRepairs(made: state.planRepairs(limit: 10), failed: [])
        // A client that read the layout before the repair commits the block it kept, as it knew it.
        _ = try state.commit(CommitObject(auth: auth, path: "f", persist: false, size: 100, blocks: blocks), now: 3)
        let location = try state.get(GetObject(auth: auth, path: "f"), now: 4)
        #expect(location.blocks[0].servers == [2, 3])
    }

    @Test func readCapabilitiesCoverGivenBlocksAndWriteOnesReservedBlocks() throws {
        var state = base.state(replication: 1)
        let blocks = try state.allocate(auth, count: 3)
        #expect(try state.authorizeBlocks(AuthorizeBlocks(auth: auth, rights: .read, blocks: 1...3)) == 1...3)
        #expect(throws: PocketError.self) {
            try state.authorizeBlocks(AuthorizeBlocks(auth: auth, rights: .read, blocks: 1...4))
        }
        #expect(try state.authorizeBlocks(AuthorizeBlocks(auth: auth, rights: .write, blocks: 2...3)) == 2...3)
        _ = try state.commit(
            CommitObject(auth: auth, path: "f", persist: false, size: 65536, blocks: [blocks[0]]), now: 1)
        #expect(throws: PocketError.self, "committed blocks cannot be written again") {
            try state.authorizeBlocks(AuthorizeBlocks(auth: auth, rights: .write, blocks: 1...1))
        }
        #expect(throws: PocketError.self) {
            try state.authorizeBlocks(AuthorizeBlocks(auth: auth, rights: .free, blocks: 2...2))
        }
        #expect(throws: PocketError.self, "a range wider than Int is refused, not a trap") {
            try state.authorizeBlocks(AuthorizeBlocks(auth: auth, rights: .write, blocks: 0...BlockID.max))
        }
        #expect(throws: PocketError.self) {
            try state.authorizeBlocks(
                AuthorizeBlocks(auth: JobAuth(job: 7, token: "wrong"), rights: .read, blocks: 1...1))
        }
    }
}
