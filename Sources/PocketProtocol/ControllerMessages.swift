import NIOCore

// Messages served by the controller, plus `Ping`, which every server answers.

public struct Ping: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.ping
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}

public struct RegisterServer: WireRequest, Hashable {
    public typealias Response = RegisterServerReply
    public static let opcode = Opcode.registerServer

    public var kind: ServerKind
    public var tier: Tier
    public var address: String
    public var capacityBytes: UInt64
    /// Declared throughput, bytes per second.
    public var throughput: UInt64
    /// The id an earlier registration of this same process gave it; 0 for a process registering for
    /// the first time (a storage server started again has lost its blocks, so it must not claim its
    /// old id). A controller that restarted gives the id back, so namespaces naming it stay right.
    public var previousID: ServerID
    /// From metadata servers: the storage servers of their server table. A restarted controller
    /// learns from them which ids are taken (it gives new servers ids above them) and their tiers.
    public var knownServers: [StorageServerEntry]
    /// From metadata servers: the jobs they hold, from which a restarted controller rebuilds its
    /// registry. Carries the jobs' tokens: never log it whole.
    public var jobs: [JobRecord]
    /// From metadata servers: ended jobs whose persisted objects they keep under the job's name.
    public var retiredJobs: [RetiredJob]
    /// The server's proof that it holds the cluster key (a `control` capability it signed): the
    /// controller places no data on, and takes no report from, a server without one.
    public var proof: Capability?

    public init(
        kind: ServerKind, tier: Tier, address: String, capacityBytes: UInt64, throughput: UInt64,
        previousID: ServerID = 0, knownServers: [StorageServerEntry] = [], jobs: [JobRecord] = [],
        retiredJobs: [RetiredJob] = [], proof: Capability? = nil
    ) {
        self.kind = kind
        self.tier = tier
        self.address = address
        self.capacityBytes = capacityBytes
        self.throughput = throughput
        self.previousID = previousID
        self.knownServers = knownServers
        self.jobs = jobs
        self.retiredJobs = retiredJobs
        self.proof = proof
    }

    public init(from buffer: inout ByteBuffer) throws {
        kind = try buffer.readWireEnum(ServerKind.self)
        tier = try buffer.readWireEnum(Tier.self)
        address = try buffer.readWireString()
        capacityBytes = try buffer.readWire()
        throughput = try buffer.readWire()
        previousID = try buffer.readWire()
        knownServers = try buffer.readWireArray(minimumElementSize: 16) { try StorageServerEntry(from: &$0) }
        jobs = try buffer.readWireArray(minimumElementSize: 17) { try JobRecord(from: &$0) }
        retiredJobs = try buffer.readWireArray(minimumElementSize: 10) { try RetiredJob(from: &$0) }
        proof = try buffer.readWireBool() ? try Capability(from: &buffer) : nil
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(kind.rawValue)
        writer.buffer.writeInteger(tier.rawValue)
        writer.buffer.writeWireString(address)
        writer.buffer.writeInteger(capacityBytes)
        writer.buffer.writeInteger(throughput)
        writer.buffer.writeInteger(previousID)
        writer.buffer.writeWireArray(knownServers) { $1.write(to: &$0) }
        writer.buffer.writeInteger(UInt32(jobs.count))
        for job in jobs { job.encode(into: &writer) }
        writer.buffer.writeWireArray(retiredJobs) { $1.write(to: &$0) }
        writer.buffer.writeWireBool(proof != nil)
        proof?.encode(into: &writer)
    }
}

/// A job as its metadata server holds it, reported when the server registers: what a restarted
/// controller needs to serve the job's holders again. Its description leaves the token out.
public struct JobRecord: WireMessage, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public var id: JobID
    public var name: String
    public var token: String
    public var hints: JobHints
    /// The weight map the metadata server places the job's new blocks by.
    public var weightMap: WeightMap

    public init(id: JobID, name: String, token: String, hints: JobHints, weightMap: WeightMap) {
        self.id = id
        self.name = name
        self.token = token
        self.hints = hints
        self.weightMap = weightMap
    }

    public init(from buffer: inout ByteBuffer) throws {
        id = try buffer.readWire()
        name = try buffer.readWireString()
        token = try buffer.readWireString()
        hints = try JobHints(from: &buffer)
        weightMap = try WeightMap(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(id)
        writer.buffer.writeWireString(name)
        writer.buffer.writeWireString(token)
        hints.encode(into: &writer)
        weightMap.encode(into: &writer)
    }

    public var description: String { "JobRecord(id: \(id), name: \(name), hints: \(hints), weightMap: \(weightMap))" }
    public var debugDescription: String { description }
}

/// An ended job whose persisted objects a metadata server keeps: a later job of that name gets them
/// back under this id.
public struct RetiredJob: Hashable, Sendable {
    public var id: JobID
    public var name: String

    public init(id: JobID, name: String) {
        self.id = id
        self.name = name
    }

    init(from buffer: inout ByteBuffer) throws {
        id = try buffer.readWire()
        name = try buffer.readWireString()
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(id)
        buffer.writeWireString(name)
    }
}

/// The server's id and the cluster-wide settings it must follow.
public struct RegisterServerReply: WireMessage, Hashable {
    public var serverID: ServerID
    public var blockSize: UInt32
    /// Objects up to this size are kept whole by the metadata server (one round trip per put or get).
    public var inlineLimit: UInt32

    public init(serverID: ServerID, blockSize: UInt32, inlineLimit: UInt32) {
        self.serverID = serverID
        self.blockSize = blockSize
        self.inlineLimit = inlineLimit
    }

    public init(from buffer: inout ByteBuffer) throws {
        serverID = try buffer.readWire()
        blockSize = try buffer.readWire()
        inlineLimit = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(serverID)
        writer.buffer.writeInteger(blockSize)
        writer.buffer.writeInteger(inlineLimit)
    }
}

/// Sent every second by each server. A controller that does not know the id answers `unknownServer`,
/// and the server registers again (the controller restarted).
public struct Heartbeat: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.heartbeat

    public var serverID: ServerID
    public var stats: ServerStats
    /// From metadata servers: bytes of blocks they have placed (reserved or stored) on each storage
    /// server, so the controller knows when a draining server holds nothing live.
    public var placedBytes: [ServerID: UInt64]
    /// From metadata servers: bytes each of their jobs holds.
    public var jobBytes: [JobID: UInt64]
    /// As in `RegisterServer`: the sender holds the cluster key.
    public var proof: Capability?

    public init(
        serverID: ServerID, stats: ServerStats, placedBytes: [ServerID: UInt64] = [:], jobBytes: [JobID: UInt64] = [:],
        proof: Capability? = nil
    ) {
        self.serverID = serverID
        self.stats = stats
        self.placedBytes = placedBytes
        self.jobBytes = jobBytes
        self.proof = proof
    }

    public init(from buffer: inout ByteBuffer) throws {
        serverID = try buffer.readWire()
        stats = try ServerStats(from: &buffer)
        placedBytes = try Self.uniqueKeys(
            buffer.readWireArray(minimumElementSize: 12) {
                (try $0.readWire(ServerID.self), try $0.readWire(UInt64.self))
            })
        jobBytes = try Self.uniqueKeys(
            buffer.readWireArray(minimumElementSize: 16) { (try $0.readWire(JobID.self), try $0.readWire(UInt64.self)) }
        )
        proof = try buffer.readWireBool() ? try Capability(from: &buffer) : nil
    }

    /// A sender lists each key once; a repeated one is a malformed report (found by fuzzing: adding
    /// repeats up overflowed).
    private static func uniqueKeys<K: Hashable>(_ pairs: [(K, UInt64)]) throws -> [K: UInt64] {
        var result: [K: UInt64] = [:]
        result.reserveCapacity(pairs.count)
        for (key, value) in pairs {
            guard result.updateValue(value, forKey: key) == nil else { throw PocketError.malformed("key \(key) twice") }
        }
        return result
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(serverID)
        stats.encode(into: &writer)
        writer.buffer.writeWireArray(placedBytes.sorted { $0.key < $1.key }) { buffer, entry in
            buffer.writeInteger(entry.key)
            buffer.writeInteger(entry.value)
        }
        writer.buffer.writeWireArray(jobBytes.sorted { $0.key < $1.key }) { buffer, entry in
            buffer.writeInteger(entry.key)
            buffer.writeInteger(entry.value)
        }
        writer.buffer.writeWireBool(proof != nil)
        proof?.encode(into: &writer)
    }
}

public struct RegisterJob: WireRequest, Hashable {
    public typealias Response = JobGrant
    public static let opcode = Opcode.registerJob

    public var name: String
    public var hints: JobHints

    public init(name: String, hints: JobHints) {
        self.name = name
        self.hints = hints
    }

    public init(from buffer: inout ByteBuffer) throws {
        name = try buffer.readWireString()
        hints = try JobHints(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireString(name)
        hints.encode(into: &writer)
    }
}

/// What a job's holder needs to use it: its id, its secret and its metadata server.
public struct JobGrant: WireMessage, Hashable {
    public var jobID: JobID
    public var token: String
    public var metadataAddress: String
    public var blockSize: UInt32
    public var inlineLimit: UInt32

    public init(jobID: JobID, token: String, metadataAddress: String, blockSize: UInt32, inlineLimit: UInt32) {
        self.jobID = jobID
        self.token = token
        self.metadataAddress = metadataAddress
        self.blockSize = blockSize
        self.inlineLimit = inlineLimit
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        token = try buffer.readWireString()
        metadataAddress = try buffer.readWireString()
        blockSize = try buffer.readWire()
        inlineLimit = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        writer.buffer.writeWireString(token)
        writer.buffer.writeWireString(metadataAddress)
        writer.buffer.writeInteger(blockSize)
        writer.buffer.writeInteger(inlineLimit)
    }
}

/// A job named and proven by its token: deregistration and lookup.
public struct JobCredentials: Hashable, Sendable {
    public var name: String
    public var token: String

    public init(name: String, token: String) {
        self.name = name
        self.token = token
    }

    init(from buffer: inout ByteBuffer) throws {
        name = try buffer.readWireString()
        token = try buffer.readWireString()
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeWireString(name)
        buffer.writeWireString(token)
    }
}

public struct DeregisterJob: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.deregisterJob

    public var job: JobCredentials
    public init(job: JobCredentials) { self.job = job }
    public init(from buffer: inout ByteBuffer) throws { job = try JobCredentials(from: &buffer) }
    public func encode(into writer: inout WireWriter) { job.write(to: &writer.buffer) }
}

public struct LookupJob: WireRequest, Hashable {
    public typealias Response = JobGrant
    public static let opcode = Opcode.lookupJob

    public var job: JobCredentials
    public init(job: JobCredentials) { self.job = job }
    public init(from buffer: inout ByteBuffer) throws { job = try JobCredentials(from: &buffer) }
    public func encode(into writer: inout WireWriter) { job.write(to: &writer.buffer) }
}

public struct ListJobs: WireRequest, Hashable {
    public typealias Response = JobList
    public static let opcode = Opcode.listJobs
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}

public struct JobList: WireMessage, Hashable {
    public var jobs: [JobInfo]
    public init(jobs: [JobInfo]) { self.jobs = jobs }

    public init(from buffer: inout ByteBuffer) throws {
        jobs = try buffer.readWireArray(minimumElementSize: 40) { try JobInfo(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(UInt32(jobs.count))
        for job in jobs { job.encode(into: &writer) }
    }
}

public struct ClusterStatusRequest: WireRequest, Hashable {
    public typealias Response = ClusterStatus
    public static let opcode = Opcode.clusterStatus
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}

public struct ClusterStatus: WireMessage, Hashable {
    public var blockSize: UInt32
    public var servers: [ServerInfo]
    public var jobs: [JobInfo]

    public init(blockSize: UInt32, servers: [ServerInfo], jobs: [JobInfo]) {
        self.blockSize = blockSize
        self.servers = servers
        self.jobs = jobs
    }

    public init(from buffer: inout ByteBuffer) throws {
        blockSize = try buffer.readWire()
        servers = try buffer.readWireArray(minimumElementSize: 20) { try ServerInfo(from: &$0) }
        jobs = try buffer.readWireArray(minimumElementSize: 40) { try JobInfo(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(blockSize)
        writer.buffer.writeInteger(UInt32(servers.count))
        for server in servers { server.encode(into: &writer) }
        writer.buffer.writeInteger(UInt32(jobs.count))
        for job in jobs { job.encode(into: &writer) }
    }
}

public struct UpdateHints: WireRequest, Hashable {
    public typealias Response = JobInfo
    public static let opcode = Opcode.updateHints

    public var job: JobCredentials
    public var hints: JobHints

    public init(job: JobCredentials, hints: JobHints) {
        self.job = job
        self.hints = hints
    }

    public init(from buffer: inout ByteBuffer) throws {
        job = try JobCredentials(from: &buffer)
        hints = try JobHints(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        job.write(to: &writer.buffer)
        hints.encode(into: &writer)
    }
}
