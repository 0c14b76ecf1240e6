import PocketProtocol

/// The controller's registry as a plain value: servers with their liveness, jobs with their hints,
/// allocations and weight maps. The service around it does the I/O its changes call for.
public struct ControllerState: Sendable {
    public struct Settings: Sendable {
        public var blockSize: UInt32 = 64 << 10
        public var inlineLimit: UInt32 = 8 << 10
        /// A server that has not reported for this long is dead.
        public var deadAfter: Duration = .seconds(3)
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
    public internal(set) var servers: [ServerID: Server] = [:]
    public internal(set) var jobs: [String: Job] = [:]
    /// Ended jobs that left persisted objects: the name keeps its id and metadata server.
    public private(set) var retired: [String: (id: JobID, metadataServer: ServerID)] = [:]
    /// Throughput and capacity reserved on each storage server by jobs' shares.
    var reserved: [ServerID: (throughput: Double, capacity: Double)] = [:]
    private var nextServerID: ServerID = 1
    /// Per metadata server, the bytes of blocks it has placed on each storage server (its reports).
    var placedBy: [ServerID: [ServerID: UInt64]] = [:]
    /// Servers asked of the provisioner and not registered yet, per pool, with when that was, and
    /// whether they were asked for because of load (they take a share of the pool's jobs).
    var launching: [Pool: [(asked: ContinuousClock.Instant, forLoad: Bool)]] = [:]
    /// Jobs whose weight maps changed and that metadata servers have not been told of yet.
    var changedJobs: Set<String> = []
    /// The last scaling decisions, oldest first.
    public internal(set) var events: [ScalingEvent] = []

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    // MARK: Servers

    /// Adds a server. One that registers again from the same address replaces its old entry.
    public mutating func register(_ request: RegisterServer, now: ContinuousClock.Instant) -> RegisterServerReply {
        if let old = servers.values.first(where: { $0.info.address == request.address && $0.info.kind == request.kind }) {
            servers.removeValue(forKey: old.info.id)
            reserved.removeValue(forKey: old.info.id)
        }
        let id = nextServerID
        nextServerID += 1
        var stats = ServerStats()
        stats.capacityBytes = request.capacityBytes
        servers[id] = Server(
            info: ServerInfo(
                id: id, kind: request.kind, tier: request.tier, address: request.address, state: .active,
                throughput: request.throughput, stats: stats),
            lastSeen: now)
        joined(id, now: now)
        return RegisterServerReply(serverID: id, blockSize: settings.blockSize, inlineLimit: settings.inlineLimit)
    }

    /// Records a server's report. Returns true when the server came back from the dead.
    public mutating func heartbeat(_ request: Heartbeat, now: ContinuousClock.Instant) throws(PocketError) -> Bool {
        guard servers[request.serverID] != nil else {
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
                    id: $0.id, address: $0.address, tier: $0.tier, state: $0.state, capacityBytes: $0.stats.capacityBytes)
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
