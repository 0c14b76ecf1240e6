import PocketTestSupport
import Testing

@testable import PocketController
@testable import PocketProtocol

/// Placement on a fixed set of servers through the controller's state: jobs arrive and leave, and
/// every step keeps weight maps summing to 1, servers within what they declared, and the fullest
/// servers filled first.
@Suite struct PlacementTests {
    let start = ContinuousClock.now
    static let gb: UInt64 = 1_000_000_000

    /// A metadata server and `count` storage servers per tier, each 1 GB/s and 1 TB.
    func cluster(_ tiers: [Tier: Int]) throws -> ControllerState {
        var state = ControllerState()
        _ = try state.register(
            RegisterServer(kind: .metadata, tier: .dram, address: "127.0.0.1:1", capacityBytes: 1, throughput: 0),
            now: start)
        var port = 100
        for tier in Tier.allCases {
            for _ in 0..<(tiers[tier] ?? 0) {
                port += 1
                _ = try state.register(
                    RegisterServer(
                        kind: .storage, tier: tier, address: "127.0.0.1:\(port)", capacityBytes: 1000 * Self.gb,
                        throughput: Self.gb),
                    now: start)
            }
        }
        return state
    }

    /// A throughput-and-capacity job that fits SSD best: `fraction` of one server.
    func hints(_ fraction: Double, latencySensitive: Bool? = nil) -> JobHints {
        JobHints(
            latencySensitive: latencySensitive, peakThroughput: UInt64(fraction * Double(Self.gb)),
            capacity: UInt64(fraction * 1000 * Double(Self.gb)))
    }

    func admit(_ state: inout ControllerState, _ name: String, _ hints: JobHints) throws -> ControllerState.Job {
        try #require(try state.admit(name: name, hints: hints, newID: 1, token: "t").job)
    }

    func weights(_ job: ControllerState.Job) -> [ServerID: Double] {
        Dictionary(
            uniqueKeysWithValues: job.info.weightMap.entries.map { ($0.server, ($0.weight * 1e6).rounded() / 1e6) })
    }

    func allocated(_ state: ControllerState) -> [ServerID: Double] {
        Dictionary(
            uniqueKeysWithValues: state.status.servers.filter { $0.kind == .storage }.map {
                ($0.id, (Double($0.allocatedThroughput) / Double(Self.gb) * 1e6).rounded() / 1e6)
            })
    }

    @Test func theFullestServerWithRoomIsFilledFirst() throws {
        var state = try cluster([.ssd: 3])  // servers 2, 3, 4
        #expect(weights(try admit(&state, "a", hints(0.3))) == [2: 1])
        #expect(weights(try admit(&state, "b", hints(0.3))) == [2: 1])
        // 0.4 of server 2 is left: two thirds of c there, the rest on the next server.
        #expect(weights(try admit(&state, "c", hints(0.6))) == [2: 0.666667, 3: 0.333333])
        #expect(allocated(state) == [2: 1, 3: 0.2, 4: 0])
        state.remove("a", persisted: false)
        #expect(allocated(state) == [2: 0.7, 3: 0.2, 4: 0])
        #expect(weights(try admit(&state, "d", hints(0.1))) == [2: 1])
        // Server 4 stayed empty all along, free to be drained.
        #expect(allocated(state) == [2: 0.8, 3: 0.2, 4: 0])
        for name in ["b", "c", "d"] { state.remove(name, persisted: false) }
        #expect(allocated(state) == [2: 0, 3: 0, 4: 0])
    }

    @Test func arrivalsAndDeparturesNeverOverAllocateAServer() throws {
        var state = try cluster([.ssd: 4, .hdd: 2])
        var random = SplitMix64(seed: 7)
        var live: [String] = []
        for step in 0..<400 {
            if !live.isEmpty, live.count > 6 || random.next() % 3 == 0 {
                let index = Int(random.next() % UInt64(live.count))
                state.remove(live.remove(at: index), persisted: false)
            } else {
                // Keep total demand under the SSD servers' total so every job fits somewhere.
                let demand = Double(random.next() % 50 + 1) / 100
                let job = try admit(&state, "job-\(step)", hints(demand))
                live.append(job.info.name)
                #expect(!job.info.allocation.overcommitted)
                #expect(abs(job.info.weightMap.entries.reduce(0) { $0 + $1.weight } - 1) < 1e-9)
                // A job that fits one tier never spills into another.
                let tiers = Set(
                    job.info.weightMap.entries.map { entry in
                        state.status.servers.first { $0.id == entry.server }!.tier
                    })
                #expect(tiers == [.ssd])
            }
            for server in state.status.servers where server.kind == .storage {
                #expect(server.allocatedThroughput <= server.throughput + 1)
                #expect(server.allocatedCapacity <= server.stats.capacityBytes + 1)
            }
        }
    }

    @Test func serversAreLaunchedOnlyWhenNeeded() throws {
        var state = try cluster([.ssd: 1])
        let room = ProvisioningRoom([.ssd: (Self.gb, 1000 * Self.gb, 5)])
        // Fits: no launch.
        #expect(try state.admit(name: "small", hints: hints(0.5), newID: 1, token: "t", room: room).job != nil)
        // 0.5 of server 2 is left; 2.3 servers' worth needs two more (1.8 / 1 rounded up).
        guard
            case .launch(.ssd, let count) = try state.admit(
                name: "big", hints: hints(2.3), newID: 2, token: "t", room: room)
        else {
            Issue.record("expected a launch")
            return
        }
        #expect(count == 2)
        #expect(state.jobs["big"] == nil)
        for port in [201, 202] {
            _ = try state.register(
                RegisterServer(
                    kind: .storage, tier: .ssd, address: "127.0.0.1:\(port)", capacityBytes: 1000 * Self.gb,
                    throughput: Self.gb),
                now: start)
        }
        let big = try #require(try state.admit(name: "big", hints: hints(2.3), newID: 2, token: "t").job)
        #expect(!big.info.allocation.overcommitted)
        #expect(weights(big).values.reduce(0, +) > 0.999_999)
        #expect(weights(big).keys.sorted() == [2, 3, 4])
        // More than the provisioner may add: as many as it may, then over-commit for the rest.
        let small = ProvisioningRoom([.ssd: (Self.gb, 1000 * Self.gb, 1)])
        guard case .launch(.ssd, 1) = try state.admit(name: "huge", hints: hints(10), newID: 3, token: "t", room: small)
        else {
            Issue.record("expected a launch of one server")
            return
        }
        let huge = try state.admit(name: "huge", hints: hints(10), newID: 3, token: "t").job
        #expect(huge?.info.allocation.overcommitted == true)
    }

    @Test func aJobTooBigForItsTierMixesTiersCheapestFirst() throws {
        var state = try cluster([.dram: 1, .ssd: 1])
        // Non-latency-sensitive 1.5 servers' worth: the SSD server gives what it has, DRAM the rest.
        let job = try admit(&state, "mixed", hints(1.5))
        #expect(weights(job) == [3: 0.666667, 2: 0.333333])
        #expect(job.info.allocation.tier == .ssd)
        #expect(!job.info.allocation.overcommitted)
        let policy = RightsizingPolicy()
        let expected =
            2.0 / 3 * policy.profile(.ssd).cost(throughput: 1.5e9, capacity: 1.5e12)
            + 1.0 / 3 * policy.profile(.dram).cost(throughput: 1.5e9, capacity: 1.5e12)
        #expect(abs(job.info.allocation.costPerHour - expected) < 1e-9)
    }

    @Test func latencySensitiveJobsStayOnDRAM() throws {
        var state = try cluster([.dram: 1, .hdd: 2])
        let job = try admit(&state, "fast", hints(3, latencySensitive: true))
        #expect(weights(job) == [2: 1])
        #expect(job.info.allocation.tier == .dram)
        #expect(job.info.allocation.overcommitted)
        var noDRAM = try cluster([.hdd: 2])
        #expect {
            try noDRAM.admit(name: "fast", hints: hints(0.1, latencySensitive: true), newID: 1, token: "t")
        } throws: {
            ($0 as? PocketError)?.code == .noSpace
        }
    }

    @Test func newHintsMoveTheJobsNewBlocksAndItsReservation() throws {
        var state = try cluster([.dram: 1, .hdd: 1])
        let capacityHeavy = JobHints(latencySensitive: true, peakThroughput: 10_000_000, capacity: 500 * Self.gb)
        let before = try admit(&state, "j", capacityHeavy)
        #expect(weights(before) == [2: 1])
        var relaxed = capacityHeavy
        relaxed.latencySensitive = false
        let after = try #require(try state.updateHints("j", relaxed).job)
        #expect(after.info.allocation.tier == .hdd)
        #expect(weights(after) == [3: 1])
        let servers = state.status.servers
        #expect(servers.first { $0.id == 2 }?.allocatedCapacity == 0)
        #expect(servers.first { $0.id == 3 }?.allocatedCapacity == 500 * Self.gb)
        // Hints that cannot be placed leave the job as it was.
        var impossible = relaxed
        impossible.latencySensitive = true
        var noDRAM = try cluster([.hdd: 1])
        _ = try admit(&noDRAM, "j", relaxed)
        #expect { try noDRAM.updateHints("j", impossible) } throws: { ($0 as? PocketError)?.code == .noSpace }
        #expect(noDRAM.jobs["j"]?.info.hints == relaxed)
        #expect(noDRAM.status.servers.first { $0.id == 2 }?.allocatedCapacity == 500 * Self.gb)
    }
}
