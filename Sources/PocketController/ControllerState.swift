import PocketProtocol

/// The controller's registry as a plain value: servers with their liveness, jobs with their hints,
/// allocations and weight maps. The service around it does the I/O its changes call for.
public struct ControllerState: Sendable {
    public struct Settings: Sendable {
        public var blockSize: UInt32 = 64 << 10
        public var inlineLimit: UInt32 = 8 << 10
        /// A server that has not reported for this long is dead.
        public var deadAfter: Duration = .seconds(3)
        /// After the controller starts, how long it waits for the servers of a cluster that outlived
        /// it to register again before it gives out new server ids, admits jobs, pushes server
        /// tables or scales (see `isRecovering`). Zero for a cluster known to be new (the tests, the
        /// simulation, `pocket up`); the daemon defaults to `deadAfter`.
        public var recoveryGrace: Duration = .zero
        public var policy = RightsizingPolicy()
        public init() {}
    }

    public struct Server: Sendable {
        public var info: ServerInfo
        public var lastSeen: ContinuousClock.Instant
        /// When it began draining (no new blocks, released once it holds nothing live).
        public var drainingSince: ContinuousClock.Instant?
    }

    public struct Job: Sendable {
        public var info: JobInfo
        public var token: String
        public var metadataServer: ServerID
        /// The fraction of the job each storage server holds (its weight map), which reserves that
        /// fraction of the job's throughput and capacity on the server.
        public var shares: [ServerID: Double] = [:]
    }

    /// What a registration came to: the reply, and for a metadata server the jobs taken back from its
    /// report and those that could not be (name → why).
    public struct Registration: Sendable {
        public var reply: RegisterServerReply
        public var recovered: [JobInfo] = []
        public var refused: [String: String] = [:]
    }

    /// What placing a job came to: done, or more servers are needed first.
    public enum Outcome: Sendable {
        case placed(Job)
        /// Start `count` storage servers of `tier`, then try again without room to launch more.
        case launch(Tier, count: Int)

        public var job: Job? {
            if case .placed(let job) = self { job } else { nil }
        }
    }

    public let settings: Settings
    /// When this controller started: its recovery grace period runs from here.
    public let startedAt: ContinuousClock.Instant
    public internal(set) var servers: [ServerID: Server] = [:]
    public internal(set) var jobs: [String: Job] = [:]
    /// Ended jobs that left persisted objects: the name keeps its id and metadata server.
    public private(set) var retired: [String: (id: JobID, metadataServer: ServerID)] = [:]
    /// Throughput and capacity reserved on each storage server by jobs' shares.
    var reserved: [ServerID: (throughput: Double, capacity: Double)] = [:]
    /// Above every server id this controller has given out or seen (see `noteSeen`).
    private(set) var nextServerID: ServerID = 1
    /// Per metadata server, the bytes of blocks it has placed on each storage server (its reports).
    var placedBy: [ServerID: [ServerID: UInt64]] = [:]
    /// Servers asked of the provisioner and not registered yet, per pool, with when that was, and
    /// whether they were asked for because of load (they take a share of the pool's jobs).
    var launching: [Pool: [(asked: ContinuousClock.Instant, forLoad: Bool)]] = [:]
    /// Jobs whose weight maps changed and that metadata servers have not been told of yet.
    var changedJobs: Set<String> = []
    /// The last scaling decisions, oldest first.
    public internal(set) var events: [ScalingEvent] = []

    public init(settings: Settings = Settings(), startedAt: ContinuousClock.Instant = .now) {
        self.settings = settings
        self.startedAt = startedAt
    }

    // MARK: Servers

    /// Whether the controller is still in its recovery grace period: the servers of a cluster that
    /// outlived the last controller are registering again (each within a heartbeat, 500 ms) and
    /// metadata servers are reporting their jobs. Until it ends the controller learns and does not
    /// act: it answers registrations and heartbeats, but gives out no new server id, admits no job,
    /// pushes no server table (one missing servers not back yet would hide their blocks) and does
    /// not scale.
    public func isRecovering(now: ContinuousClock.Instant) -> Bool {
        settings.recoveryGrace > .zero && now < recoveryEnds
    }

    public var recoveryEnds: ContinuousClock.Instant { startedAt + settings.recoveryGrace }

    /// Adds a server. One that registers again from the same address replaces its old entry. A
    /// server that names the id it had gets it back unless another server holds it; a new one gets a
    /// new id, never one seen before, and only once the recovery grace period is over (until then an
    /// id that a server not back yet still holds could look free). A metadata server's report of
    /// its jobs rebuilds them (`recover`).
    public mutating func register(
        _ request: RegisterServer, now: ContinuousClock.Instant
    ) throws(PocketError) -> Registration {
        let sameServer = { (server: Server) in
            server.info.address == request.address && server.info.kind == request.kind
        }
        // Its own id back, unless another live server holds it (a dead entry under it is its own past).
        let claimed =
            request.previousID != 0
            && servers[request.previousID].map { $0.info.state == .dead || sameServer($0) } ?? true
        if !claimed, isRecovering(now: now) {
            throw PocketError(.busy, "the controller has just started and is waiting for its servers to come back")
        }
        for server in request.knownServers { noteSeen(server.id) }
        if let old = servers.values.first(where: sameServer) {
            servers.removeValue(forKey: old.info.id)
            reserved.removeValue(forKey: old.info.id)
        }
        let id: ServerID
        if claimed {
            id = request.previousID
            noteSeen(id)
            servers.removeValue(forKey: id)
            reserved.removeValue(forKey: id)
        } else {
            guard nextServerID < .max else { throw PocketError(.noSpace, "no server ids are left") }
            id = nextServerID
            nextServerID += 1
        }
        var stats = ServerStats()
        stats.capacityBytes = request.capacityBytes
        servers[id] = Server(
            info: ServerInfo(
                id: id, kind: request.kind, tier: request.tier, address: request.address, state: .active,
                throughput: request.throughput, stats: stats),
            lastSeen: now)
        if request.kind == .storage { reserveShares(on: id) }
        joined(id, now: now)
        var registration = Registration(
            reply: RegisterServerReply(serverID: id, blockSize: settings.blockSize, inlineLimit: settings.inlineLimit))
        if request.kind == .metadata { recover(request, on: id, into: &registration) }
        return registration
    }

    /// Keeps new ids above `id`: after a restart the controller learns the ids in use from the
    /// servers (theirs, and the storage servers metadata servers know of, dead ones included).
    mutating func noteSeen(_ id: ServerID) {
        if id < .max { nextServerID = max(nextServerID, id + 1) }
    }

    /// A storage server registered: the jobs with a share on its id reserve that share of it. Only
    /// servers already back had their reservations made when a job was taken back after a restart
    /// (`reserve` skips unknown servers); this makes the rest as each returns, so reservations are
    /// always the shares of the servers the controller knows, whichever registers first. For a new
    /// id no job has a share yet, and this does nothing.
    private mutating func reserveShares(on id: ServerID) {
        for job in jobs.values {
            guard let share = job.shares[id] else { continue }
            var held = reserved[id] ?? (0, 0)
            held.throughput += share * Double(job.info.allocation.throughput)
            held.capacity += share * Double(job.info.allocation.capacity)
            reserved[id] = held
        }
    }

    /// Records a server's report. Returns true when the server came back from the dead.
    public mutating func heartbeat(_ request: Heartbeat, now: ContinuousClock.Instant) throws(PocketError) -> Bool {
        guard servers[request.serverID] != nil else {
            noteSeen(request.serverID)
            throw PocketError(.unknownServer, "server \(request.serverID) is not registered")
        }
        servers[request.serverID]!.lastSeen = now
        servers[request.serverID]!.info.stats = request.stats
        if servers[request.serverID]!.info.kind == .metadata { record(request) }
        guard servers[request.serverID]!.info.state == .dead else { return false }
        servers[request.serverID]!.info.state = servers[request.serverID]!.drainingSince == nil ? .active : .draining
        return true
    }

    /// Marks servers silent for too long as dead; returns the ones that just died.
    public mutating func expire(now: ContinuousClock.Instant) -> [ServerID] {
        var died: [ServerID] = []
        for (id, server) in servers where server.info.state != .dead && now - server.lastSeen > settings.deadAfter {
            servers[id]!.info.state = .dead
            died.append(id)
        }
        return died.sorted()
    }

    public func activeServers(_ kind: ServerKind) -> [ServerInfo] {
        servers.values.map(\.info).filter { $0.kind == kind && $0.state == .active }.sorted { $0.id < $1.id }
    }

    /// The storage servers as metadata servers and clients need them.
    public var storageTable: ServerTable {
        ServerTable(
            servers: servers.values.map(\.info).filter { $0.kind == .storage }.sorted { $0.id < $1.id }.map {
                StorageServerEntry(
                    id: $0.id, address: $0.address, tier: $0.tier, state: $0.state,
                    capacityBytes: $0.stats.capacityBytes)
            })
    }

    // MARK: Jobs

    public static func validate(name: String) throws(PocketError) {
        guard !name.isEmpty, name.utf8.count <= 255, name != ".", name != "..", !name.hasPrefix("."),
            name.unicodeScalars.allSatisfy({ $0 != "/" && $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw PocketError(
                .invalidArgument, "'\(name)' is not a valid job name (1–255 bytes, no '/', not starting with '.')")
        }
    }

    /// Admits a job: picks its metadata server, its allocation and where it goes. The caller tells
    /// the metadata server, and calls `forget` if that fails. `room` is what a provisioner may add.
    public mutating func admit(
        name: String, hints: JobHints, newID: JobID, token: String, room: ProvisioningRoom? = nil
    ) throws(PocketError) -> Outcome {
        try Self.validate(name: name)
        try settings.policy.validate(hints)
        guard jobs[name] == nil else { throw PocketError(.alreadyExists, "job '\(name)' is already registered") }
        let metadataServers = activeServers(.metadata)
        let id: JobID
        let metadata: ServerInfo
        if let old = retired[name], let server = metadataServers.first(where: { $0.id == old.metadataServer }) {
            // The job's persisted objects live on that metadata server under that id.
            id = old.id
            metadata = server
        } else {
            guard let leastLoaded = metadataServers.min(by: { load(of: $0.id) < load(of: $1.id) }) else {
                throw PocketError(.unavailable, "no metadata server is registered")
            }
            id = newID
            metadata = leastLoaded
        }
        let (allocation, shares): (Allocation, [ServerID: Double])
        switch try place(hints, room: room) {
        case .launch(let tier, let count): return .launch(tier, count: count)
        case .placed(let placed, let placedShares): (allocation, shares) = (placed, placedShares)
        }
        let job = Job(
            info: JobInfo(
                name: name, id: id, hints: hints, allocation: allocation, weightMap: Self.weightMap(shares),
                metadataAddress: metadata.address),
            token: token, metadataServer: metadata.id, shares: shares)
        jobs[name] = job
        reserve(job, sign: 1)
        retired.removeValue(forKey: name)
        return .placed(job)
    }

    func place(_ hints: JobHints, room: ProvisioningRoom?) throws(PocketError) -> Placement.Decision {
        let storage = servers.values.map(\.info).filter { $0.kind == .storage && $0.state == .active }
        if storage.isEmpty, room == nil {
            // A cluster still starting (or a controller that restarted): the job waits for servers
            // with an empty weight map, which `repairWeightMaps` fills once they register.
            return .placed(settings.policy.preferred(for: hints), shares: [:])
        }
        let placementServers = storage.map { info in
            var server = PlacementServer(
                id: info.id, tier: info.tier, throughput: Double(info.throughput),
                capacity: Double(info.stats.capacityBytes))
            if let held = reserved[info.id] {
                server.reservedThroughput = held.throughput
                server.reservedCapacity = held.capacity
            }
            return server
        }
        return try Placement.place(
            settings.policy.candidates(for: hints), on: placementServers, room: room, policy: settings.policy)
    }

    mutating func reserve(_ job: Job, sign: Double) {
        let allocation = job.info.allocation
        for (server, share) in job.shares where servers[server] != nil {
            var held = reserved[server] ?? (0, 0)
            held.throughput = max(0, held.throughput + sign * share * Double(allocation.throughput))
            held.capacity = max(0, held.capacity + sign * share * Double(allocation.capacity))
            reserved[server] = held
        }
    }

    static func weightMap(_ shares: [ServerID: Double]) -> WeightMap {
        let total = shares.values.reduce(0, +)
        return WeightMap(
            shares.sorted { $0.key < $1.key }.map { WeightMap.Entry(server: $0.key, weight: $0.value / total) })
    }

    private func load(of metadataServer: ServerID) -> Int {
        jobs.values.filter { $0.metadataServer == metadataServer }.count
    }

    public mutating func forget(_ name: String) {
        if let job = jobs.removeValue(forKey: name) { reserve(job, sign: -1) }
    }

    public func authorize(_ credentials: JobCredentials) throws(PocketError) -> Job {
        guard let job = jobs[credentials.name] else {
            throw PocketError(.unknownJob, "no job named '\(credentials.name)'")
        }
        guard constantTimeEqual(job.token, credentials.token) else {
            throw PocketError(.unauthorized, "wrong token for job '\(credentials.name)'")
        }
        return job
    }

    public func grant(for job: Job) -> JobGrant {
        JobGrant(
            jobID: job.info.id, token: job.token, metadataAddress: job.info.metadataAddress,
            blockSize: settings.blockSize, inlineLimit: settings.inlineLimit)
    }

    /// Removes a job; `persisted` says whether its metadata server kept objects under its name.
    public mutating func remove(_ name: String, persisted: Bool) {
        guard let job = jobs.removeValue(forKey: name) else { return }
        reserve(job, sign: -1)
        if persisted { retired[name] = (job.info.id, job.metadataServer) }
    }

    /// Takes back the jobs a metadata server reports holding, when this controller does not know them
    /// (it restarted). Each keeps its name, id, token and hints, and the weight map the metadata
    /// server places its blocks by (the data is where that map sent it); its allocation is computed
    /// again from the hints on the tier holding most of that map (the tier's servers as the
    /// controller or the metadata server knows them; the cheapest otherwise), and its shares reserve
    /// that allocation on the storage servers known now, the others as they register. A job the
    /// controller knows under the same id just points at this server; one whose name or id another
    /// job holds is refused (a metadata server that reports after the grace period, when a new job
    /// may have taken the name). Ended jobs' names come back with their ids, for their persisted
    /// objects.
    mutating func recover(
        _ report: RegisterServer, on metadataServer: ServerID, into registration: inout Registration
    ) {
        let tiers = Dictionary(report.knownServers.map { ($0.id, $0.tier) }) { first, _ in first }
            .merging(servers.mapValues(\.info.tier)) { _, known in known }
        let capacities = Dictionary(report.knownServers.map { ($0.id, $0.capacityBytes) }) { first, _ in first }
            .merging(servers.mapValues(\.info.stats.capacityBytes)) { _, known in known }
        for record in report.jobs {
            if let known = jobs[record.name], known.info.id == record.id {
                jobs[record.name]!.metadataServer = metadataServer
                jobs[record.name]!.info.metadataAddress = report.address
                continue
            }
            do throws(PocketError) {
                try Self.validate(name: record.name)
                try settings.policy.validate(record.hints)
            } catch {
                registration.refused[record.name] = error.message
                continue
            }
            if let other = jobs[record.name] ?? jobs.values.first(where: { $0.info.id == record.id }) {
                registration.refused[record.name] =
                    "job '\(other.info.name)' (id \(other.info.id)) holds its name or id"
                continue
            }
            var shares: [ServerID: Double] = [:]
            for entry in record.weightMap.entries where entry.weight > 0 {
                shares[entry.server, default: 0] += entry.weight
                noteSeen(entry.server)
            }
            var weightByTier: [Tier: Double] = [:]
            for (server, share) in shares { if let tier = tiers[server] { weightByTier[tier, default: 0] += share } }
            let tier = weightByTier.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
            var allocation =
                tier.map { settings.policy.allocation(for: record.hints, on: $0) }
                ?? settings.policy.preferred(for: record.hints)
            // Placement marked a job the cluster could not hold as over-committed; rebuilt, the mark
            // stands where the job's share alone is more than a server of its map declared.
            allocation.overcommitted = shares.contains { server, share in
                let throughput = servers[server].map { Double($0.info.throughput) } ?? .infinity
                let capacity = capacities[server].map { Double($0) } ?? .infinity
                return share * Double(allocation.throughput) > throughput * (1 + Placement.epsilon)
                    || share * Double(allocation.capacity) > capacity * (1 + Placement.epsilon)
            }
            let job = Job(
                info: JobInfo(
                    name: record.name, id: record.id, hints: record.hints, allocation: allocation,
                    weightMap: record.weightMap, metadataAddress: report.address),
                token: record.token, metadataServer: metadataServer, shares: shares)
            jobs[record.name] = job
            reserve(job, sign: 1)
            retired.removeValue(forKey: record.name)
            registration.recovered.append(job.info)
        }
        for ended in report.retiredJobs where jobs[ended.name] == nil && retired[ended.name] == nil {
            retired[ended.name] = (ended.id, metadataServer)
        }
    }

    /// Gives a running job new hints: a new allocation and weight map for its new blocks (the
    /// blocks it has stay where they are). The hints are kept only once the job is placed.
    public mutating func updateHints(
        _ name: String, _ hints: JobHints, room: ProvisioningRoom? = nil
    ) throws(PocketError) -> Outcome {
        try settings.policy.validate(hints)
        guard let old = jobs[name] else { throw PocketError(.unknownJob, "no job named '\(name)'") }
        reserve(old, sign: -1)
        let (allocation, shares): (Allocation, [ServerID: Double])
        do {
            switch try place(hints, room: room) {
            case .launch(let tier, let count):
                reserve(old, sign: 1)
                return .launch(tier, count: count)
            case .placed(let placed, let placedShares): (allocation, shares) = (placed, placedShares)
            }
        } catch {
            reserve(old, sign: 1)
            throw error
        }
        var job = old
        job.info.hints = hints
        job.info.allocation = allocation
        job.info.weightMap = Self.weightMap(shares)
        job.shares = shares
        jobs[name] = job
        reserve(job, sign: 1)
        return .placed(job)
    }

    /// Jobs whose weight map has no live server are placed again over the live ones; returns them.
    public mutating func repairWeightMaps() -> [Job] {
        let live = Set(activeServers(.storage).map(\.id))
        guard !live.isEmpty else { return [] }
        var repaired: [Job] = []
        for (name, job) in jobs where !job.info.weightMap.entries.contains(where: { live.contains($0.server) }) {
            if case .placed(let placed)? = try? updateHints(name, job.info.hints) {
                repaired.append(placed)
                changedJobs.insert(name)
            }
        }
        return repaired
    }

    public var status: ClusterStatus {
        ClusterStatus(
            blockSize: settings.blockSize,
            servers: servers.values.map { server in
                var info = server.info
                if let held = reserved[info.id] {
                    info.allocatedThroughput = UInt64(held.throughput.rounded())
                    info.allocatedCapacity = UInt64(held.capacity.rounded())
                }
                return info
            }.sorted { $0.id < $1.id },
            jobs: jobs.values.map(\.info).sorted { $0.name < $1.name })
    }
}
