import PocketProtocol

/// The controller state's side of autoscaling: loads per pool for the autoscaler, and the changes
/// its directives make — servers expected, drained, taken back, released — with an event for each.
extension ControllerState {
    /// How long a draining server must have drained before it can be released, so blocks reserved
    /// just before the drain (and metadata servers' reports of them) have shown up.
    static let drainGrace: Duration = .milliseconds(1500)
    /// Launches not registered within this long are forgotten (the provisioner failed quietly).
    static let launchTimeout: Duration = .seconds(30)
    static let eventLimit = 10_000

    // MARK: Loads

    /// The load of every pool that has servers or servers on their way.
    public func loads(now: ContinuousClock.Instant) -> [PoolLoad] {
        var pools: [Pool: PoolLoad] = [:]
        for (pool, asked) in launching where !asked.isEmpty {
            pools[pool, default: PoolLoad(pool: pool, active: [])].launching = asked.count
        }
        for server in servers.values.map(\.info) where server.state != .dead {
            let pool = server.kind == .metadata ? Pool.metadata : Pool.storage(server.tier)
            var load = ServerLoad(id: server.id)
            let stats = server.stats
            load.cpu = stats.cpu
            load.declaredThroughput = Double(server.throughput)
            load.declaredCapacity = Double(stats.capacityBytes)
            if server.throughput > 0 {
                load.network = Double(stats.bytesInPerSecond + stats.bytesOutPerSecond) / Double(server.throughput)
            }
            if stats.capacityBytes > 0 { load.capacity = Double(stats.usedBytes) / Double(stats.capacityBytes) }
            if let held = reserved[server.id] {
                load.allocation = max(
                    held.throughput / max(Double(server.throughput), 1), held.capacity / max(load.declaredCapacity, 1))
            }
            if server.kind == .metadata {
                // A metadata server's load is its CPU and its share of jobs, not bytes on the wire.
                load.network = 0
                load.declaredThroughput = 0
            }
            var entry = pools[pool] ?? PoolLoad(pool: pool, active: [])
            if server.state == .draining { entry.draining.append(load) } else { entry.active.append(load) }
            pools[pool] = entry
        }
        return pools.values.sorted { ($0.pool.kind.rawValue, $0.pool.tier) < ($1.pool.kind.rawValue, $1.pool.tier) }
    }

    // MARK: Directives

    /// Servers asked of the provisioner; `forLoad` ones take a share of the pool's jobs on arrival.
    public mutating func expectLaunch(_ pool: Pool, count: Int, forLoad: Bool, now: ContinuousClock.Instant) {
        launching[pool, default: []] += Array(repeating: (now, forLoad), count: count)
    }

    /// Forgets launches the provisioner could not make.
    public mutating func cancelLaunches(_ pool: Pool, count: Int) {
        let asked = launching[pool]?.count ?? 0
        launching[pool]?.removeLast(min(count, asked))
    }

    /// Forgets launches that never registered.
    public mutating func forgetStaleLaunches(now: ContinuousClock.Instant) {
        for pool in launching.keys { launching[pool]!.removeAll { now - $0.asked > Self.launchTimeout } }
    }

    /// A new server registered: it fulfils an expected launch, and one asked for because of load
    /// takes a share of every job on its tier in proportion to its throughput.
    mutating func joined(_ id: ServerID, now: ContinuousClock.Instant) {
        let info = servers[id]!.info
        let pool = info.kind == .metadata ? Pool.metadata : Pool.storage(info.tier)
        guard let expected = launching[pool]?.first else { return }
        launching[pool]!.removeFirst()
        guard expected.forLoad, info.kind == .storage else { return }
        let tierServers = activeServers(.storage).filter { $0.tier == info.tier }
        let total = tierServers.reduce(0) { $0 + Double($1.throughput) }
        guard total > 0 else { return }
        let part = Double(info.throughput) / total
        for (name, job) in jobs {
            let onTier = job.shares.filter { share in tierServers.contains { $0.id == share.key && $0.id != id } }
            guard !onTier.isEmpty else { continue }
            reserve(job, sign: -1)
            var moved = job
            for (server, share) in onTier {
                moved.shares[server] = share * (1 - part)
                moved.shares[id, default: 0] += share * part
            }
            moved.info.weightMap = Self.weightMap(moved.shares)
            jobs[name] = moved
            reserve(moved, sign: 1)
            changedJobs.insert(name)
        }
    }

    /// Stops placing new blocks on a server. Storage: the jobs with a share on it are placed again
    /// without it (their written blocks stay and stay readable). Metadata: no new jobs.
    public mutating func drain(_ id: ServerID, now: ContinuousClock.Instant) {
        guard servers[id]?.info.state == .active else { return }
        servers[id]!.info.state = .draining
        servers[id]!.drainingSince = now
        guard servers[id]!.info.kind == .storage else { return }
        for (name, job) in jobs where job.shares[id] != nil {
            if case .placed = try? updateHints(name, job.info.hints) { changedJobs.insert(name) }
        }
    }

    /// Takes a draining server back: it gets a share of its pool's jobs as a new one would.
    public mutating func reactivate(_ id: ServerID, now: ContinuousClock.Instant) {
        guard servers[id]?.info.state == .draining else { return }
        servers[id]!.info.state = .active
        servers[id]!.drainingSince = nil
        let info = servers[id]!.info
        launching[info.kind == .metadata ? .metadata : .storage(info.tier), default: []].insert((now, true), at: 0)
        joined(id, now: now)
    }

    /// Draining servers that hold nothing live: storage servers with no blocks (by their own count
    /// and every metadata server's), metadata servers with no jobs and no persisted objects.
    public func releasable(now: ContinuousClock.Instant) -> [ServerInfo] {
        servers.values.filter { server in
            guard server.info.state == .draining, let since = server.drainingSince, now - since >= Self.drainGrace
            else { return false }
            let id = server.info.id
            if server.info.kind == .metadata {
                return !jobs.values.contains { $0.metadataServer == id }
                    && !retired.values.contains { $0.metadataServer == id }
            }
            return server.info.stats.blockCount == 0 && !placedBy.values.contains { ($0[id] ?? 0) > 0 }
        }.map(\.info).sorted { $0.id < $1.id }
    }

    /// Forgets a released server.
    public mutating func remove(server id: ServerID) {
        servers.removeValue(forKey: id)
        reserved.removeValue(forKey: id)
        placedBy.removeValue(forKey: id)
    }

    /// Jobs whose weight maps changed since the last call, for the metadata servers to hear of.
    public mutating func takeChangedJobs() -> [Job] {
        defer { changedJobs.removeAll() }
        return changedJobs.sorted().compactMap { jobs[$0] }
    }

    /// Records a scaling decision; `time` is Unix milliseconds (simulated time in a simulation).
    public mutating func record(
        _ action: ScalingEvent.Action, _ pool: Pool, count: Int, utilisation: Double, reason: String, time: Int64
    ) {
        events.append(
            ScalingEvent(
                time: time, action: action, kind: pool.kind, tier: pool.tier, count: UInt32(count),
                servers: UInt32(self.count(pool) + (action == .launch ? count : 0)), utilisation: utilisation,
                reason: reason))
        if events.count > Self.eventLimit { events.removeFirst(events.count - Self.eventLimit) }
    }

    /// Active servers of a pool.
    public func count(_ pool: Pool) -> Int {
        servers.values.filter {
            $0.info.state == .active && $0.info.kind == pool.kind
                && (pool.kind == .metadata || $0.info.tier == pool.tier)
        }.count
    }

    /// A metadata server's report: what it placed where, and what each of its jobs holds.
    mutating func record(_ report: Heartbeat) {
        placedBy[report.serverID] = report.placedBytes
        for (name, job) in jobs where job.metadataServer == report.serverID {
            jobs[name]!.info.usedBytes = report.jobBytes[job.info.id] ?? 0
        }
    }
}
