import Testing

@testable import PocketController
@testable import PocketProtocol

/// The controller state's side of scaling: loads per pool, new servers taking a share of their
/// tier's jobs, drains that move new blocks away, and releases only once nothing live is left.
@Suite struct ScalingStateTests {
    let start = ContinuousClock.now
    static let gb: UInt64 = 1_000_000_000

    func register(
        _ state: inout ControllerState, _ kind: ServerKind, port: Int, tier: Tier = .dram
    ) throws -> ServerID {
        try state.register(
            RegisterServer(
                kind: kind, tier: tier, address: "127.0.0.1:\(port)", capacityBytes: 100 * Self.gb,
                throughput: kind == .storage ? Self.gb : 0),
            now: start
        ).reply.serverID
    }

    func stats(cpu: Double = 0, network: UInt64 = 0, used: UInt64 = 0, blocks: UInt64 = 0) -> ServerStats {
        var stats = ServerStats()
        stats.cpu = cpu
        stats.bytesInPerSecond = network
        stats.usedBytes = used
        stats.capacityBytes = 100 * Self.gb
        stats.blockCount = blocks
        return stats
    }

    let hints = JobHints(latencySensitive: true, peakThroughput: 100_000_000, capacity: 10_000_000_000)

    @Test func loadsReportEachPoolsUtilisation() throws {
        var state = ControllerState()
        let metadata = try register(&state, .metadata, port: 1)
        let a = try register(&state, .storage, port: 2)
        let b = try register(&state, .storage, port: 3)
        _ = try state.heartbeat(Heartbeat(serverID: metadata, stats: stats(cpu: 0.9)), now: start)
        _ = try state.heartbeat(Heartbeat(serverID: a, stats: stats(network: 900_000_000)), now: start)
        _ = try state.heartbeat(
            Heartbeat(serverID: b, stats: stats(network: 100_000_000, used: 50 * Self.gb)), now: start)
        let loads = Dictionary(uniqueKeysWithValues: state.loads(now: start).map { ($0.pool, $0) })
        #expect(loads[.metadata]?.utilisation.value == 0.9)
        #expect(loads[.metadata]?.utilisation.resource == "cpu")
        #expect(loads[.storage(.dram)]?.utilisation.value == 0.5)  // (0.9 + 0.1) / 2 on the wire
        #expect(loads[.storage(.dram)]?.active.count == 2)
    }

    @Test func aServerStartedForLoadTakesAShareOfItsTiersJobs() throws {
        var state = ControllerState()
        _ = try register(&state, .metadata, port: 1)
        let first = try register(&state, .storage, port: 2)
        let job = try #require(try state.admit(name: "j", hints: hints, newID: 1, token: "t").job)
        #expect(job.info.weightMap.entries.map(\.server) == [first])
        _ = state.takeChangedJobs()
        state.expectLaunch(.storage(.dram), count: 1, forLoad: true, now: start)
        #expect(state.loads(now: start).first { $0.pool == .storage(.dram) }?.launching == 1)
        let second = try register(&state, .storage, port: 3)
        let moved = try #require(state.takeChangedJobs().first)
        #expect(moved.info.weightMap.entries.map(\.server) == [first, second])
        #expect(moved.info.weightMap.entries.map(\.weight) == [0.5, 0.5])
        #expect(state.loads(now: start).first { $0.pool == .storage(.dram) }?.launching == 0)
        // Reservations moved with the shares.
        let reserved = state.status.servers.filter { $0.kind == .storage }.map(\.allocatedCapacity)
        #expect(reserved == [5 * Self.gb, 5 * Self.gb])
        // A server started for a job's allocation takes no share of the others.
        state.expectLaunch(.storage(.dram), count: 1, forLoad: false, now: start)
        _ = try register(&state, .storage, port: 4)
        #expect(state.takeChangedJobs().isEmpty)
    }

    @Test func drainingMovesNewBlocksAwayAndReleasesOnlyWhenEmpty() throws {
        var state = ControllerState()
        let metadata = try register(&state, .metadata, port: 1)
        let first = try register(&state, .storage, port: 2)
        let second = try register(&state, .storage, port: 3)
        let job = try #require(try state.admit(name: "j", hints: hints, newID: 1, token: "t").job)
        let holder = try #require(job.info.weightMap.entries.first?.server)
        let other = holder == first ? second : first
        _ = try state.heartbeat(Heartbeat(serverID: holder, stats: stats(blocks: 10)), now: start)
        _ = state.takeChangedJobs()

        state.drain(holder, now: start)
        #expect(state.servers[holder]?.info.state == .draining)
        let replaced = try #require(state.takeChangedJobs().first)
        #expect(replaced.info.weightMap.entries.map(\.server) == [other])
        #expect(state.storageTable.servers.first { $0.id == holder }?.state == .draining)
        // Still holding blocks, and within the grace period: not releasable.
        #expect(state.releasable(now: start + .seconds(5)).isEmpty)
        _ = try state.heartbeat(Heartbeat(serverID: holder, stats: stats(blocks: 0)), now: start + .seconds(1))
        #expect(state.releasable(now: start + .seconds(1)).isEmpty)  // the grace period
        // A metadata server still has blocks reserved there: not yet.
        _ = try state.heartbeat(
            Heartbeat(serverID: metadata, stats: stats(), placedBytes: [holder: 65536]), now: start + .seconds(2))
        #expect(state.releasable(now: start + .seconds(2)).isEmpty)
        _ = try state.heartbeat(Heartbeat(serverID: metadata, stats: stats()), now: start + .seconds(2))
        #expect(state.releasable(now: start + .seconds(2)).map(\.id) == [holder])
        state.remove(server: holder)
        #expect(state.storageTable.servers.map(\.id) == [other])
    }

    @Test func aDrainingServerCanBeTakenBack() throws {
        var state = ControllerState()
        _ = try register(&state, .metadata, port: 1)
        let first = try register(&state, .storage, port: 2)
        _ = try register(&state, .storage, port: 3)
        _ = try state.admit(name: "j", hints: hints, newID: 1, token: "t")
        state.drain(first, now: start)
        _ = state.takeChangedJobs()
        state.reactivate(first, now: start)
        #expect(state.servers[first]?.info.state == .active)
        #expect(state.releasable(now: start + .seconds(10)).isEmpty)
        // Taken back for load, it gets a share of the tier's jobs again.
        #expect(state.takeChangedJobs().first?.info.weightMap.entries.contains { $0.server == first } == true)
    }

    @Test func newJobsGoToTheLeastLoadedMetadataServerAndNeverToADrainingOne() throws {
        var state = ControllerState()
        let m1 = try register(&state, .metadata, port: 1)
        _ = try register(&state, .storage, port: 2)
        _ = try state.admit(name: "a", hints: hints, newID: 1, token: "t")
        let m2 = try register(&state, .metadata, port: 3)
        #expect(try state.admit(name: "b", hints: hints, newID: 2, token: "t").job?.metadataServer == m2)
        #expect(try state.admit(name: "c", hints: hints, newID: 3, token: "t").job?.metadataServer == m1)
        state.drain(m2, now: start)
        #expect(try state.admit(name: "d", hints: hints, newID: 4, token: "t").job?.metadataServer == m1)
        // Released only once its job has gone.
        #expect(state.releasable(now: start + .seconds(5)).isEmpty)
        state.remove("b", persisted: false)
        #expect(state.releasable(now: start + .seconds(5)).map(\.id) == [m2])
    }

    @Test func eventsAreKeptInOrderAndBounded() {
        var state = ControllerState()
        for index in 0..<(ControllerState.eventLimit + 5) {
            state.record(.launch, .storage(.ssd), count: 1, utilisation: 0.9, reason: "r", time: Int64(index))
        }
        #expect(state.events.count == ControllerState.eventLimit)
        #expect(state.events.first?.time == 5)
    }
}
