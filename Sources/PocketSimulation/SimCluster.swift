import PocketController
import PocketProtocol

/// The simulated servers: what each holds and carries, servers booting, and the provisioner's side
/// of the autoscaler's directives.
struct SimCluster {
    struct Server {
        var tier: Tier
        /// Jobs with blocks here (a drained server keeps them until the jobs end).
        var holders: Set<String> = []
    }

    let policy: RightsizingPolicy
    private(set) var servers: [ServerID: Server] = [:]
    private var booting: [(at: Duration, tier: Tier)] = []
    private var nextAddress = 0

    init(policy: RightsizingPolicy) {
        self.policy = policy
    }

    var count: Int { servers.count }

    mutating func register(_ tier: Tier, in state: inout ControllerState, now: ContinuousClock.Instant) {
        nextAddress += 1
        let shape = policy.profile(tier)
        // A simulated cluster is new (no recovery grace period): registration cannot be refused.
        guard
            let id = try? state.register(
                RegisterServer(
                    kind: .storage, tier: tier, address: "sim-\(nextAddress)", capacityBytes: shape.nodeCapacity,
                    throughput: shape.nodeThroughput),
                now: now
            ).reply.serverID
        else { return }
        servers[id] = Server(tier: tier)
        var stats = ServerStats()
        stats.capacityBytes = shape.nodeCapacity
        _ = try? state.heartbeat(Heartbeat(serverID: id, stats: stats), now: now)
    }

    /// What a provisioner could still start per tier, within `limit` servers per tier.
    func room(_ state: ControllerState, limit: Int) -> ProvisioningRoom {
        var tiers: [Tier: (throughput: UInt64, capacity: UInt64, servers: Int)] = [:]
        for tier in Tier.allCases {
            let shape = policy.profile(tier)
            let present = servers.values.filter { $0.tier == tier }.count + booting.filter { $0.tier == tier }.count
            tiers[tier] = (shape.nodeThroughput, shape.nodeCapacity, limit - present)
        }
        return ProvisioningRoom(tiers)
    }

    mutating func launch(
        _ tier: Tier, count: Int, at: Duration, state: inout ControllerState, now: ContinuousClock.Instant,
        forLoad: Bool, utilisation: Double = 0, reason: String = "a job's allocation does not fit", wall: Int64 = 0
    ) {
        state.expectLaunch(.storage(tier), count: count, forLoad: forLoad, now: now)
        state.record(.launch, .storage(tier), count: count, utilisation: utilisation, reason: reason, time: wall)
        booting += Array(repeating: (at, tier), count: count)
    }

    mutating func boot(until time: Duration, in state: inout ControllerState, now: ContinuousClock.Instant) {
        let ready = booting.filter { $0.at <= time }
        booting.removeAll { $0.at <= time }
        for server in ready { register(server.tier, in: &state, now: now) }
    }

    /// Every server reports the load its jobs' shares put on it: throughput × activity on the wire,
    /// half the job's capacity filled, CPU in proportion to the wire.
    mutating func report(
        running: [String: Simulation.SimJob], in state: inout ControllerState, now: ContinuousClock.Instant
    ) {
        var wire: [ServerID: Double] = [:]
        var used: [ServerID: Double] = [:]
        for (id, _) in servers { servers[id]!.holders = servers[id]!.holders.filter { running[$0] != nil } }
        for (name, job) in running {
            guard let placed = state.jobs[name] else { continue }
            let allocation = placed.info.allocation
            for (server, share) in placed.shares where servers[server] != nil {
                wire[server, default: 0] += share * Double(allocation.throughput) * job.activity
                used[server, default: 0] += share * Double(allocation.capacity) * 0.5
                servers[server]!.holders.insert(name)
            }
        }
        for (id, server) in servers {
            let shape = policy.profile(server.tier)
            var stats = ServerStats()
            stats.capacityBytes = shape.nodeCapacity
            stats.usedBytes = UInt64(min(used[id] ?? 0, Double(shape.nodeCapacity)))
            stats.bytesInPerSecond = UInt64(wire[id] ?? 0)
            stats.blockCount = UInt64(server.holders.count)
            stats.cpu = 0.5 * (wire[id] ?? 0) / Double(shape.nodeThroughput)
            _ = try? state.heartbeat(Heartbeat(serverID: id, stats: stats), now: now)
        }
    }

    mutating func carryOut(
        _ directive: Autoscaler.Directive, state: inout ControllerState, now: ContinuousClock.Instant, at: Duration,
        wall: Int64
    ) {
        switch directive {
        case .launch(let pool, let count, let utilisation, let reason):
            launch(
                pool.tier, count: count, at: at, state: &state, now: now, forLoad: true, utilisation: utilisation,
                reason: reason, wall: wall)
        case .reactivate(let id, let pool, let utilisation, let reason):
            state.reactivate(id, now: now)
            state.record(.reactivate, pool, count: 1, utilisation: utilisation, reason: reason, time: wall)
        case .drain(let id, let pool, let utilisation, let reason):
            state.drain(id, now: now)
            state.record(.drain, pool, count: 1, utilisation: utilisation, reason: reason, time: wall)
        }
    }

    /// Stops drained servers that hold nothing.
    mutating func release(in state: inout ControllerState, now: ContinuousClock.Instant, wall: Int64) {
        for server in state.releasable(now: now) where servers[server.id] != nil {
            state.remove(server: server.id)
            servers.removeValue(forKey: server.id)
            state.record(.release, .storage(server.tier), count: 1, utilisation: 0, reason: "drained", time: wall)
        }
    }

    /// Adds a step's server-seconds (booting servers are paid for too).
    func account(step: Duration, into report: inout Simulation.Report) {
        let stepSeconds = seconds(step)
        for tier in Tier.allCases {
            let present = servers.values.filter { $0.tier == tier }.count + booting.filter { $0.tier == tier }.count
            report.serverSeconds[tier, default: 0] += Double(present) * stepSeconds
            report.peakServers[tier] = max(report.peakServers[tier] ?? 0, present)
        }
    }

    func sample(time: Duration, jobs: Int, loads: [PoolLoad]) -> Simulation.Sample {
        var counts: [Tier: Int] = [:]
        for server in servers.values { counts[server.tier, default: 0] += 1 }
        var utilisation: [Tier: Double] = [:]
        for load in loads where load.pool.kind == .storage { utilisation[load.pool.tier] = load.utilisation.value }
        return Simulation.Sample(time: time, servers: counts, jobs: jobs, utilisation: utilisation)
    }
}
