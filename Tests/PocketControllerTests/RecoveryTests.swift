import Testing

@testable import PocketController
@testable import PocketProtocol

/// A controller killed and started again: the servers that outlived it register again under their
/// ids, and the metadata servers' reports bring its jobs back.
@Suite struct RecoveryTests {
    let start = ContinuousClock.now
    static let gb: UInt64 = 1_000_000_000

    /// A controller that has just started: for three seconds it waits for servers to come back.
    func restarted() -> ControllerState {
        var settings = ControllerState.Settings()
        settings.recoveryGrace = .seconds(3)
        return ControllerState(settings: settings, startedAt: start)
    }

    func storage(port: Int, previousID: ServerID = 0, tier: Tier = .dram) -> RegisterServer {
        RegisterServer(
            kind: .storage, tier: tier, address: "127.0.0.1:\(port)", capacityBytes: 100 * Self.gb, throughput: Self.gb,
            previousID: previousID)
    }

    func metadata(port: Int = 1, previousID: ServerID = 0) -> RegisterServer {
        RegisterServer(
            kind: .metadata, tier: .dram, address: "127.0.0.1:\(port)", capacityBytes: 1, throughput: 0,
            previousID: previousID)
    }

    /// What the metadata server of `state`'s jobs reports when it registers again.
    func report(of state: ControllerState, previousID: ServerID = 1) -> RegisterServer {
        var request = metadata(previousID: previousID)
        request.jobs = state.jobs.values.map {
            JobRecord(
                id: $0.info.id, name: $0.info.name, token: $0.token, hints: $0.info.hints, weightMap: $0.info.weightMap)
        }
        request.retiredJobs = state.retired.map { RetiredJob(id: $0.value.id, name: $0.key) }
        request.knownServers = state.storageTable.servers
        return request
    }

    /// The cluster before the restart: metadata server 1, storage servers 2 and 3, two jobs, one
    /// ended job that kept persisted objects.
    func before() throws -> ControllerState {
        var state = ControllerState(startedAt: start)
        _ = try state.register(metadata(), now: start)
        _ = try state.register(storage(port: 2), now: start)
        _ = try state.register(storage(port: 3), now: start)
        let hints = JobHints(latencySensitive: true, peakThroughput: 600_000_000, capacity: 60 * Self.gb)
        _ = try state.admit(name: "sort", hints: hints, newID: 11, token: "sort-token")
        _ = try state.admit(
            name: "join", hints: JobHints(peakThroughput: 1_200_000_000), newID: 12, token: "join-token")
        _ = try state.admit(name: "kept", hints: JobHints(), newID: 13, token: "kept-token")
        state.remove("kept", persisted: true)
        return state
    }

    @Test func aServerRegisteringAgainKeepsItsID() throws {
        var state = restarted()
        let later = start + .milliseconds(600)
        #expect(try state.register(storage(port: 3, previousID: 3), now: later).reply.serverID == 3)
        #expect(try state.register(metadata(previousID: 1), now: later).reply.serverID == 1)
        #expect(try state.register(storage(port: 2, previousID: 2), now: later).reply.serverID == 2)
        #expect(state.storageTable.servers.map(\.id) == [2, 3])
        // The same server registering once more (its controller did not restart) keeps it too.
        #expect(try state.register(storage(port: 2, previousID: 2), now: start + .seconds(5)).reply.serverID == 2)
        #expect(state.storageTable.servers.map(\.id) == [2, 3])
        // New ids are above every id given back.
        #expect(try state.register(storage(port: 4), now: start + .seconds(5)).reply.serverID == 4)
    }

    @Test func aFreshProcessGetsANewIDOnceTheGracePeriodIsOver() throws {
        var state = restarted()
        // Until the servers still running have come back, any id could be one of theirs.
        #expect { try state.register(storage(port: 3), now: start + .seconds(1)) } throws: {
            ($0 as? PocketError)?.code == .busy
        }
        var report = metadata(previousID: 1)
        report.knownServers = [
            StorageServerEntry(id: 2, address: "127.0.0.1:2", tier: .dram, state: .active, capacityBytes: 1),
            StorageServerEntry(id: 3, address: "127.0.0.1:3", tier: .dram, state: .active, capacityBytes: 1),
            StorageServerEntry(id: 7, address: "127.0.0.1:7", tier: .dram, state: .dead, capacityBytes: 1),
        ]
        _ = try state.register(report, now: start + .seconds(1))
        _ = try state.register(storage(port: 2, previousID: 2), now: start + .seconds(1))
        // Server 3 was started again as a new process (its blocks are gone): a new id, above the
        // dead server 7's, whose id the metadata server's namespaces may still name.
        let fresh = try state.register(storage(port: 3), now: start + .milliseconds(3100))
        #expect(fresh.reply.serverID == 8)
        #expect(state.storageTable.servers.map(\.id) == [2, 8])
    }

    @Test func idsNeverCollideAfterARestart() throws {
        var state = restarted()
        let later = start + .milliseconds(500)
        // Server 6's heartbeat reaches the new controller before it registers again.
        #expect { try state.heartbeat(Heartbeat(serverID: 6, stats: ServerStats()), now: later) } throws: {
            ($0 as? PocketError)?.code == .unknownServer
        }
        for id: ServerID in [4, 2, 5, 3] {
            #expect(try state.register(storage(port: Int(id), previousID: id), now: later).reply.serverID == id)
        }
        // Another process claiming live server 2's id does not get it, and gets a new one only once
        // the grace period is over.
        #expect { try state.register(storage(port: 99, previousID: 2), now: later) } throws: {
            ($0 as? PocketError)?.code == .busy
        }
        let impostor = try state.register(storage(port: 99, previousID: 2), now: start + .seconds(4))
        #expect(impostor.reply.serverID == 7)
        var ids = [impostor.reply.serverID]
        for port in 100..<104 {
            ids.append(try state.register(storage(port: port), now: start + .seconds(4)).reply.serverID)
        }
        #expect(ids == [7, 8, 9, 10, 11])
        #expect(try state.register(storage(port: 6, previousID: 6), now: start + .seconds(4)).reply.serverID == 6)
        let all = state.servers.keys.sorted()
        #expect(all == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        // Ids from the wire cannot overflow the counter.
        #expect(throws: PocketError.self) {
            try state.heartbeat(Heartbeat(serverID: .max, stats: ServerStats()), now: start + .seconds(4))
        }
        #expect(try state.register(storage(port: 200), now: start + .seconds(4)).reply.serverID == 12)
    }

    @Test func jobsAreRebuiltFromAMetadataServersReport() throws {
        let old = try before()
        var state = restarted()
        let later = start + .milliseconds(700)
        // Storage server 2 comes back before the metadata server, 3 after it.
        _ = try state.register(storage(port: 2, previousID: 2), now: later)
        let registration = try state.register(report(of: old), now: later)
        #expect(registration.recovered.map(\.name).sorted() == ["join", "sort"])
        #expect(registration.refused.isEmpty)
        for name in ["sort", "join"] {
            let job = try #require(state.jobs[name])
            let was = old.jobs[name]!
            #expect(job.info == was.info, "\(name): same id, hints, allocation, weight map, metadata server")
            #expect(job.token == was.token)
            #expect(job.metadataServer == 1)
            #expect(job.shares.keys.sorted() == was.shares.keys.sorted())
        }
        #expect(try state.authorize(JobCredentials(name: "sort", token: "sort-token")).info.id == 11)
        // Reservations on the servers that are back; server 3's once it is back too.
        #expect(state.reserved[3] == nil)
        _ = try state.register(storage(port: 3, previousID: 3), now: later)
        for id: ServerID in [2, 3] {
            let (now, then) = (state.reserved[id] ?? (0, 0), old.reserved[id] ?? (0, 0))
            #expect(abs(now.throughput - then.throughput) < 1 && abs(now.capacity - then.capacity) < 1, "server \(id)")
        }
        // The ended job's name still leads to its persisted objects.
        #expect(state.retired["kept"]?.id == 13)
        let kept = try #require(try state.admit(name: "kept", hints: JobHints(), newID: 99, token: "t").job)
        #expect(kept.info.id == 13)
        // A job leaving frees what it reserved.
        state.remove("sort", persisted: false)
        state.remove("join", persisted: false)
        state.remove("kept", persisted: false)
        for id: ServerID in [2, 3] {
            let held = state.reserved[id] ?? (0, 0)
            #expect(held.throughput < 1 && held.capacity < 1, "server \(id)")
        }
    }

    @Test func aRebuiltJobsTierComesFromItsServersEvenBeforeTheyAreBack() throws {
        let old = try before()
        var state = restarted()
        // No storage server is back yet: the metadata server's table tells their tier.
        _ = try state.register(report(of: old), now: start + .milliseconds(100))
        #expect(state.jobs["join"]?.info.allocation == old.jobs["join"]?.info.allocation)
        #expect(state.jobs["join"]?.info.allocation.tier == .dram)
        // A job more than its servers can hold keeps its over-committed mark.
        var big = metadata(port: 5, previousID: 4)
        big.knownServers = old.storageTable.servers
        big.jobs = [
            JobRecord(
                id: 70, name: "big", token: "t", hints: JobHints(capacity: 500 * Self.gb), weightMap: .even([2, 3]))
        ]
        _ = try state.register(big, now: start + .milliseconds(100))
        #expect(state.jobs["big"]?.info.allocation.overcommitted == true)
        #expect(state.jobs["join"]?.info.allocation.overcommitted == false)
    }

    @Test func aJobNameRegisteredWhileRecoveringDoesNotClashWithARecoveredOne() throws {
        let old = try before()
        var state = restarted()
        let later = start + .milliseconds(700)
        _ = try state.register(report(of: old), now: later)
        _ = try state.register(storage(port: 2, previousID: 2), now: later)
        _ = try state.register(storage(port: 3, previousID: 3), now: later)
        #expect { try state.admit(name: "sort", hints: JobHints(), newID: 50, token: "other") } throws: {
            ($0 as? PocketError)?.code == .alreadyExists
        }
        // A second metadata server reporting only after a new job took a name: its job is refused
        // rather than replacing the one whose holders have a grant.
        _ = try state.admit(name: "late", hints: JobHints(), newID: 51, token: "new-token")
        var late = metadata(port: 9, previousID: 4)
        late.jobs = [
            JobRecord(id: 60, name: "late", token: "old-token", hints: JobHints(), weightMap: .even([2])),
            JobRecord(id: 11, name: "copy", token: "x", hints: JobHints(), weightMap: .even([2])),
            JobRecord(id: 61, name: "../bad", token: "x", hints: JobHints(), weightMap: .even([2])),
        ]
        let registration = try state.register(late, now: start + .seconds(4))
        #expect(registration.recovered.isEmpty)
        #expect(registration.refused.keys.sorted() == ["../bad", "copy", "late"])
        #expect(state.jobs["late"]?.info.id == 51)
        #expect(state.jobs["late"]?.token == "new-token")
        #expect(state.jobs["copy"] == nil)
    }
}
