import NIOCore

public typealias ServerID = UInt32
public typealias JobID = UInt64
public typealias BlockID = UInt64

public enum ServerKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case metadata = 1
    case storage = 2
    public var description: String { self == .metadata ? "metadata" : "storage" }
}

/// A storage tier, fastest first.
public enum Tier: UInt8, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case dram = 1
    case ssd = 2
    case hdd = 3

    public init?(name: String) {
        guard let tier = Tier.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = tier
    }

    public var description: String {
        switch self {
        case .dram: "dram"
        case .ssd: "ssd"
        case .hdd: "hdd"
        }
    }

    public static func < (lhs: Tier, rhs: Tier) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Bytes per second a storage server of this tier declares unless told: 8 Gb/s (a node's
    /// network, the Pocket paper's figure), or 1.6 Gb/s for HDD (what its disk streams).
    public var defaultServerThroughput: UInt64 { self == .hdd ? 200_000_000 : 1_000_000_000 }
}

public enum ServerState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case active = 1
    case draining = 2
    case dead = 3

    public var description: String {
        switch self {
        case .active: "active"
        case .draining: "draining"
        case .dead: "dead"
        }
    }
}

/// What a job tells Pocket about itself; any subset may be given.
public struct JobHints: Hashable, Sendable, WireMessage {
    public var latencySensitive: Bool?
    public var maxLambdas: UInt32?
    /// Peak aggregate throughput, bytes per second.
    public var peakThroughput: UInt64?
    /// Bytes.
    public var capacity: UInt64?
    /// Copies of each block, on different storage servers (1 to 3; 1 when not given).
    public var replication: UInt8?

    public init(
        latencySensitive: Bool? = nil, maxLambdas: UInt32? = nil, peakThroughput: UInt64? = nil,
        capacity: UInt64? = nil, replication: UInt8? = nil
    ) {
        self.latencySensitive = latencySensitive
        self.maxLambdas = maxLambdas
        self.peakThroughput = peakThroughput
        self.capacity = capacity
        self.replication = replication
    }

    /// Copies of each block the job gets.
    public var copies: Int { Int(replication ?? 1) }

    public init(from buffer: inout ByteBuffer) throws {
        let present = try buffer.readWire(UInt8.self)
        guard present & ~0x1F == 0 else { throw PocketError.malformed("unknown hint bits \(present)") }
        if present & 1 != 0 { latencySensitive = try buffer.readWireBool() }
        if present & 2 != 0 { maxLambdas = try buffer.readWire() }
        if present & 4 != 0 { peakThroughput = try buffer.readWire() }
        if present & 8 != 0 { capacity = try buffer.readWire() }
        if present & 16 != 0 { replication = try buffer.readWire() }
    }

    public func encode(into writer: inout WireWriter) {
        var present: UInt8 = 0
        if latencySensitive != nil { present |= 1 }
        if maxLambdas != nil { present |= 2 }
        if peakThroughput != nil { present |= 4 }
        if capacity != nil { present |= 8 }
        if replication != nil { present |= 16 }
        writer.buffer.writeInteger(present)
        if let latencySensitive { writer.buffer.writeWireBool(latencySensitive) }
        if let maxLambdas { writer.buffer.writeInteger(maxLambdas) }
        if let peakThroughput { writer.buffer.writeInteger(peakThroughput) }
        if let capacity { writer.buffer.writeInteger(capacity) }
        if let replication { writer.buffer.writeInteger(replication) }
    }
}

/// Storage server → fraction of a job's data. Weights are positive and sum to 1.
public struct WeightMap: Hashable, Sendable, WireMessage {
    public struct Entry: Hashable, Sendable {
        public var server: ServerID
        public var weight: Double
        public init(server: ServerID, weight: Double) {
            self.server = server
            self.weight = weight
        }
    }

    public var entries: [Entry]

    public init(_ entries: [Entry] = []) { self.entries = entries }

    /// Equal weights over `servers`.
    public static func even(_ servers: [ServerID]) -> WeightMap {
        WeightMap(servers.map { Entry(server: $0, weight: 1 / Double(servers.count)) })
    }

    public init(from buffer: inout ByteBuffer) throws {
        entries = try buffer.readWireArray(minimumElementSize: 12) { buffer in
            let entry = Entry(server: try buffer.readWire(), weight: try buffer.readWireDouble())
            guard entry.weight >= 0 else { throw PocketError.malformed("negative weight") }
            return entry
        }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireArray(entries) { buffer, entry in
            buffer.writeInteger(entry.server)
            buffer.writeWireDouble(entry.weight)
        }
    }
}

/// Where a block lives: its server, and the servers holding its copies when the job asked for
/// replication. Block id 0 is a hole: a block of zeros that is stored nowhere.
public struct BlockRef: Hashable, Sendable {
    public var id: BlockID
    public var server: ServerID
    /// Further servers with a copy, in the order readers try them.
    public var replicas: [ServerID]

    public init(id: BlockID, server: ServerID, replicas: [ServerID] = []) {
        self.id = id
        self.server = server
        self.replicas = replicas
    }

    public static let hole = BlockRef(id: 0, server: 0)
    public var isHole: Bool { id == 0 }
    /// Every server holding the block, first the one readers try first.
    public var servers: [ServerID] { replicas.isEmpty ? [server] : [server] + replicas }

    /// At most three copies in all.
    public static let maxReplicas = 2
    /// Bytes of one reference without replicas on the wire.
    public static let wireSize = 13

    init(from buffer: inout ByteBuffer) throws {
        id = try buffer.readWire()
        server = try buffer.readWire()
        let count = try buffer.readWire(UInt8.self)
        guard count <= Self.maxReplicas else {
            throw PocketError.malformed("\(count) replicas (at most \(Self.maxReplicas))")
        }
        replicas = []
        for _ in 0..<count { replicas.append(try buffer.readWire()) }
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(id)
        buffer.writeInteger(server)
        buffer.writeInteger(UInt8(replicas.count))
        for replica in replicas { buffer.writeInteger(replica) }
    }
}

/// A server's load, reported to the controller every second.
public struct ServerStats: Hashable, Sendable, WireMessage {
    public var usedBytes: UInt64 = 0
    public var capacityBytes: UInt64 = 0
    public var blockCount: UInt64 = 0
    /// Fraction of one core, over the last interval.
    public var cpu: Double = 0
    public var bytesInPerSecond: UInt64 = 0
    public var bytesOutPerSecond: UInt64 = 0
    public var requestsPerSecond: UInt64 = 0
    /// Jobs a metadata server holds.
    public var jobCount: UInt32 = 0

    public init() {}

    public init(from buffer: inout ByteBuffer) throws {
        usedBytes = try buffer.readWire()
        capacityBytes = try buffer.readWire()
        blockCount = try buffer.readWire()
        cpu = try buffer.readWireDouble()
        bytesInPerSecond = try buffer.readWire()
        bytesOutPerSecond = try buffer.readWire()
        requestsPerSecond = try buffer.readWire()
        jobCount = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(usedBytes)
        writer.buffer.writeInteger(capacityBytes)
        writer.buffer.writeInteger(blockCount)
        writer.buffer.writeWireDouble(cpu)
        writer.buffer.writeInteger(bytesInPerSecond)
        writer.buffer.writeInteger(bytesOutPerSecond)
        writer.buffer.writeInteger(requestsPerSecond)
        writer.buffer.writeInteger(jobCount)
    }
}

/// A server as the controller knows it.
public struct ServerInfo: Hashable, Sendable, WireMessage {
    public var id: ServerID
    public var kind: ServerKind
    public var tier: Tier
    public var address: String
    public var state: ServerState
    /// Declared throughput, bytes per second.
    public var throughput: UInt64
    public var stats: ServerStats
    /// What jobs' allocations reserve on this server (storage servers): bytes per second and bytes.
    /// Above the declared throughput or capacity only when the cluster is over-committed.
    public var allocatedThroughput: UInt64 = 0
    public var allocatedCapacity: UInt64 = 0

    public init(
        id: ServerID, kind: ServerKind, tier: Tier, address: String, state: ServerState, throughput: UInt64,
        stats: ServerStats
    ) {
        self.id = id
        self.kind = kind
        self.tier = tier
        self.address = address
        self.state = state
        self.throughput = throughput
        self.stats = stats
    }

    public init(from buffer: inout ByteBuffer) throws {
        id = try buffer.readWire()
        kind = try buffer.readWireEnum(ServerKind.self)
        tier = try buffer.readWireEnum(Tier.self)
        address = try buffer.readWireString()
        state = try buffer.readWireEnum(ServerState.self)
        throughput = try buffer.readWire()
        stats = try ServerStats(from: &buffer)
        allocatedThroughput = try buffer.readWire()
        allocatedCapacity = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(id)
        writer.buffer.writeInteger(kind.rawValue)
        writer.buffer.writeInteger(tier.rawValue)
        writer.buffer.writeWireString(address)
        writer.buffer.writeInteger(state.rawValue)
        writer.buffer.writeInteger(throughput)
        stats.encode(into: &writer)
        writer.buffer.writeInteger(allocatedThroughput)
        writer.buffer.writeInteger(allocatedCapacity)
    }
}

/// The resources a job is given: throughput and capacity on a tier, what they cost, and how many of
/// the tier's nodes they amount to.
public struct Allocation: Hashable, Sendable, WireMessage {
    public var tier: Tier
    /// Bytes per second.
    public var throughput: UInt64
    public var capacity: UInt64
    /// Node-equivalents of the tier's node shape (the larger of the throughput and capacity shares).
    public var nodes: Double
    /// US dollars per hour at the tiers' prices.
    public var costPerHour: Double
    /// The cluster could not give the whole allocation (no provisioner, or it reached its limit):
    /// the job shares servers beyond their declared throughput or capacity.
    public var overcommitted: Bool

    public init(
        tier: Tier, throughput: UInt64, capacity: UInt64, nodes: Double = 0, costPerHour: Double = 0,
        overcommitted: Bool = false
    ) {
        self.tier = tier
        self.throughput = throughput
        self.capacity = capacity
        self.nodes = nodes
        self.costPerHour = costPerHour
        self.overcommitted = overcommitted
    }

    /// Whole nodes of the tier the allocation would take on its own.
    public var nodeCount: Int { Int((nodes - 1e-9).rounded(.up)) }

    /// Node-equivalents with two decimals ("<0.01" for a sliver of a node).
    public var nodesDescription: String { nodes < 0.005 ? "<0.01" : Units.trimmed(nodes) }

    /// `tier=ssd throughput=100 MiB/s capacity=1 GiB nodes=0.1 cost=$0.004700/h`, the form the
    /// CLI, the logs and the FUSE `user.pocket.allocation` attribute share.
    public var summary: String {
        "tier=\(tier) throughput=\(Units.formatRate(throughput)) capacity=\(Units.formatSize(capacity)) "
            + "nodes=\(nodesDescription) cost=\(Units.formatDollars(costPerHour))/h"
            + (overcommitted ? " overcommitted" : "")
    }

    public init(from buffer: inout ByteBuffer) throws {
        tier = try buffer.readWireEnum(Tier.self)
        throughput = try buffer.readWire()
        capacity = try buffer.readWire()
        nodes = try buffer.readWireDouble()
        costPerHour = try buffer.readWireDouble()
        overcommitted = try buffer.readWireBool()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(tier.rawValue)
        writer.buffer.writeInteger(throughput)
        writer.buffer.writeInteger(capacity)
        writer.buffer.writeWireDouble(nodes)
        writer.buffer.writeWireDouble(costPerHour)
        writer.buffer.writeWireBool(overcommitted)
    }
}

/// A job as the controller knows it (no secrets).
public struct JobInfo: Hashable, Sendable, WireMessage {
    public var name: String
    public var id: JobID
    public var hints: JobHints
    public var allocation: Allocation
    public var weightMap: WeightMap
    public var metadataAddress: String
    /// Bytes the job holds (blocks reserved or stored, and inline objects), as its metadata server
    /// last reported.
    public var usedBytes: UInt64 = 0

    public init(
        name: String, id: JobID, hints: JobHints, allocation: Allocation, weightMap: WeightMap,
        metadataAddress: String
    ) {
        self.name = name
        self.id = id
        self.hints = hints
        self.allocation = allocation
        self.weightMap = weightMap
        self.metadataAddress = metadataAddress
    }

    public init(from buffer: inout ByteBuffer) throws {
        name = try buffer.readWireString()
        id = try buffer.readWire()
        hints = try JobHints(from: &buffer)
        allocation = try Allocation(from: &buffer)
        weightMap = try WeightMap(from: &buffer)
        metadataAddress = try buffer.readWireString()
        usedBytes = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireString(name)
        writer.buffer.writeInteger(id)
        hints.encode(into: &writer)
        allocation.encode(into: &writer)
        weightMap.encode(into: &writer)
        writer.buffer.writeWireString(metadataAddress)
        writer.buffer.writeInteger(usedBytes)
    }
}

/// A storage server as metadata servers and clients need it: where it is and whether to use it.
public struct StorageServerEntry: Hashable, Sendable {
    public var id: ServerID
    public var address: String
    public var tier: Tier
    public var state: ServerState
    public var capacityBytes: UInt64

    public init(id: ServerID, address: String, tier: Tier, state: ServerState, capacityBytes: UInt64) {
        self.id = id
        self.address = address
        self.tier = tier
        self.state = state
        self.capacityBytes = capacityBytes
    }

    init(from buffer: inout ByteBuffer) throws {
        id = try buffer.readWire()
        address = try buffer.readWireString()
        tier = try buffer.readWireEnum(Tier.self)
        state = try buffer.readWireEnum(ServerState.self)
        capacityBytes = try buffer.readWire()
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(id)
        buffer.writeWireString(address)
        buffer.writeInteger(tier.rawValue)
        buffer.writeInteger(state.rawValue)
        buffer.writeInteger(capacityBytes)
    }
}

/// A request made on behalf of a job, proven by its token.
public protocol JobRequest: WireRequest {
    var auth: JobAuth { get }
}

/// A job's identity and secret, carried by every namespace operation.
public struct JobAuth: Hashable, Sendable {
    public var job: JobID
    public var token: String

    public init(job: JobID, token: String) {
        self.job = job
        self.token = token
    }

    init(from buffer: inout ByteBuffer) throws {
        job = try buffer.readWire()
        token = try buffer.readWireString()
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(job)
        buffer.writeWireString(token)
    }
}

public enum EntryKind: UInt8, Sendable {
    case file = 1
    case directory = 2
    case symlink = 3
}

/// A namespace entry: what `stat` and `list` return.
public struct EntryInfo: Hashable, Sendable, WireMessage {
    public var node: UInt64
    public var name: String
    public var kind: EntryKind
    public var size: UInt64
    public var mode: UInt32
    /// Nanoseconds since the epoch.
    public var modified: Int64
    public var changed: Int64
    public var persist: Bool
    public var symlinkTarget: String

    public init(
        node: UInt64, name: String, kind: EntryKind, size: UInt64, mode: UInt32, modified: Int64, changed: Int64,
        persist: Bool = false, symlinkTarget: String = ""
    ) {
        self.node = node
        self.name = name
        self.kind = kind
        self.size = size
        self.mode = mode
        self.modified = modified
        self.changed = changed
        self.persist = persist
        self.symlinkTarget = symlinkTarget
    }

    public init(from buffer: inout ByteBuffer) throws {
        node = try buffer.readWire()
        name = try buffer.readWireString()
        kind = try buffer.readWireEnum(EntryKind.self)
        size = try buffer.readWire()
        mode = try buffer.readWire()
        modified = try buffer.readWire()
        changed = try buffer.readWire()
        persist = try buffer.readWireBool()
        symlinkTarget = try buffer.readWireString()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(node)
        writer.buffer.writeWireString(name)
        writer.buffer.writeInteger(kind.rawValue)
        writer.buffer.writeInteger(size)
        writer.buffer.writeInteger(mode)
        writer.buffer.writeInteger(modified)
        writer.buffer.writeInteger(changed)
        writer.buffer.writeWireBool(persist)
        writer.buffer.writeWireString(symlinkTarget)
    }
}
