import PocketProtocol

/// The controller's registry as a plain value: servers with their liveness, jobs with their hints,
/// allocations and weight maps. The service around it does the I/O its changes call for.
public struct ControllerState: Sendable {
    public struct Settings: Sendable {
        public var blockSize: UInt32 = 64 << 10
        public var inlineLimit: UInt32 = 8 << 10
        /// A server that has not reported for this long is dead.
        public var deadAfter: Duration = .seconds(3)
        public init() {}
    }

    public struct Server: Sendable {
        public var info: ServerInfo
        public var lastSeen: ContinuousClock.Instant
    }

    public struct Job: Sendable {
        public var info: JobInfo
        public var token: String
        public var metadataServer: ServerID
    }

    public let settings: Settings
    public private(set) var servers: [ServerID: Server] = [:]
    public private(set) var jobs: [String: Job] = [:]
    /// Ended jobs that left persisted objects: the name keeps its id and metadata server.
    public private(set) var retired: [String: (id: JobID, metadataServer: ServerID)] = [:]
    private var nextServerID: ServerID = 1

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    // MARK: Servers

    /// Adds a server. One that registers again from the same address replaces its old entry.
    public mutating func register(_ request: RegisterServer, now: ContinuousClock.Instant) -> RegisterServerReply {
        if let old = servers.values.first(where: { $0.info.address == request.address && $0.info.kind == request.kind }) {
            servers.removeValue(forKey: old.info.id)
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
        return RegisterServerReply(serverID: id, blockSize: settings.blockSize, inlineLimit: settings.inlineLimit)
    }

    /// Records a server's report. Returns true when the server came back from the dead.
    public mutating func heartbeat(_ request: Heartbeat, now: ContinuousClock.Instant) throws(PocketError) -> Bool {
        guard servers[request.serverID] != nil else {
            throw PocketError(.unknownServer, "server \(request.serverID) is not registered")
        }
        servers[request.serverID]!.lastSeen = now
        servers[request.serverID]!.info.stats = request.stats
        guard servers[request.serverID]!.info.state == .dead else { return false }
        servers[request.serverID]!.info.state = .active
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

    /// Admits a job: picks its metadata server and storage weight map. The caller tells the metadata
    /// server, and calls `forget` if that fails.
    public mutating func admit(
        name: String, hints: JobHints, newID: JobID, token: String
    ) throws(PocketError) -> Job {
        try Self.validate(name: name)
        try HintRules.validate(hints)
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
        let job = Job(
            info: JobInfo(
                name: name, id: id, hints: hints, allocation: HintRules.allocation(for: hints),
                weightMap: evenWeightMap(), metadataAddress: metadata.address),
            token: token, metadataServer: metadata.id)
        jobs[name] = job
        retired.removeValue(forKey: name)
        return job
    }

    private func load(of metadataServer: ServerID) -> Int {
        jobs.values.filter { $0.metadataServer == metadataServer }.count
    }

    private func evenWeightMap() -> WeightMap {
        WeightMap.even(activeServers(.storage).map(\.id))
    }

    public mutating func forget(_ name: String) {
        jobs.removeValue(forKey: name)
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
        if persisted { retired[name] = (job.info.id, job.metadataServer) }
    }

    public mutating func updateHints(_ name: String, _ hints: JobHints) throws(PocketError) -> Job {
        try HintRules.validate(hints)
        guard jobs[name] != nil else { throw PocketError(.unknownJob, "no job named '\(name)'") }
        jobs[name]!.info.hints = hints
        jobs[name]!.info.allocation = HintRules.allocation(for: hints)
        return jobs[name]!
    }

    /// Jobs whose weight map has no live server get one over the live servers; returns them.
    public mutating func repairWeightMaps() -> [Job] {
        let live = Set(activeServers(.storage).map(\.id))
        guard !live.isEmpty else { return [] }
        var repaired: [Job] = []
        for (name, job) in jobs where !job.info.weightMap.entries.contains(where: { live.contains($0.server) }) {
            jobs[name]!.info.weightMap = evenWeightMap()
            repaired.append(jobs[name]!)
        }
        return repaired
    }

    public var status: ClusterStatus {
        ClusterStatus(
            blockSize: settings.blockSize,
            servers: servers.values.map(\.info).sorted { $0.id < $1.id },
            jobs: jobs.values.map(\.info).sorted { $0.name < $1.name })
    }
}
