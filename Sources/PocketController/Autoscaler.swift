import PocketProtocol

/// Interchangeable servers the autoscaler sizes as one: the storage servers of a tier, or the
/// metadata servers (tier dram).
public struct Pool: Hashable, Sendable, CustomStringConvertible {
    public var kind: ServerKind
    public var tier: Tier

    public init(kind: ServerKind, tier: Tier) {
        self.kind = kind
        self.tier = tier
    }

    public static let metadata = Pool(kind: .metadata, tier: .dram)
    public static func storage(_ tier: Tier) -> Pool { Pool(kind: .storage, tier: tier) }

    public var description: String { kind == .metadata ? "metadata" : "\(tier) storage" }
}

/// One server's load as the autoscaler sees it, each a fraction (1 = all of it).
public struct ServerLoad: Hashable, Sendable {
    public var id: ServerID
    /// CPU, of one core.
    public var cpu: Double = 0
    /// Bytes in and out per second against the declared throughput.
    public var network: Double = 0
    /// Bytes stored against the capacity.
    public var capacity: Double = 0
    /// What jobs' allocations reserve against the declared throughput or capacity (the larger).
    public var allocation: Double = 0
    /// Declared throughput (bytes/s) and capacity (bytes), to weigh servers in a pool's totals.
    public var declaredThroughput: Double = 0
    public var declaredCapacity: Double = 0

    public init(id: ServerID) { self.id = id }
}

/// A pool's servers and what is on its way.
public struct PoolLoad: Sendable {
    public var pool: Pool
    public var active: [ServerLoad]
    public var draining: [ServerLoad]
    /// Servers asked of the provisioner that have not registered yet.
    public var launching: Int

    public init(pool: Pool, active: [ServerLoad], draining: [ServerLoad] = [], launching: Int = 0) {
        self.pool = pool
        self.active = active
        self.draining = draining
        self.launching = launching
    }

    /// The pool's utilisation: its most used resource, and which one it is.
    public var utilisation: (value: Double, resource: String) {
        guard !active.isEmpty else { return (0, "none") }
        let cpu = active.reduce(0) { $0 + $1.cpu } / Double(active.count)
        let throughput = active.reduce(0) { $0 + $1.declaredThroughput }
        let network =
            throughput > 0 ? active.reduce(0) { $0 + $1.network * $1.declaredThroughput } / throughput : 0
        let size = active.reduce(0) { $0 + $1.declaredCapacity }
        let capacity = size > 0 ? active.reduce(0) { $0 + $1.capacity * $1.declaredCapacity } / size : 0
        return [(cpu, "cpu"), (network, "network"), (capacity, "capacity")].max { $0.0 < $1.0 }!
    }

    /// What the pool's reservations come to against its declared resources.
    var allocation: Double {
        guard !active.isEmpty else { return 0 }
        return active.reduce(0) { $0 + $1.allocation } / Double(active.count)
    }
}

/// Keeps each pool's utilisation between a lower and an upper threshold: above the upper one it
/// adds enough servers to bring it back to the middle (draining ones first, then new ones); below
/// the lower one for a while it drains the least-allocated server, if the rest stay at or below the
/// middle without it. A pure value: `decide` takes the loads and returns what to do; the
/// controller carries it out.
public struct Autoscaler: Sendable {
    public struct Settings: Sendable {
        public var lower = 0.6
        public var upper = 0.8
        /// Server counts per pool; pools without limits are not scaled.
        public var limits: [Pool: ClosedRange<Int>] = [:]
        /// How long a pool stays below `lower` before a server is drained.
        public var scaleDownAfter: Duration = .seconds(5)
        /// After any action, how long the pool is left alone (new servers' load takes a heartbeat
        /// or two to show).
        public var cooldown: Duration = .seconds(3)
        public init() {}
    }

    public enum Directive: Equatable, Sendable {
        case launch(Pool, count: Int, utilisation: Double, reason: String)
        case reactivate(ServerID, Pool, utilisation: Double, reason: String)
        case drain(ServerID, Pool, utilisation: Double, reason: String)
    }

    public let settings: Settings
    private var quietUntil: [Pool: ContinuousClock.Instant] = [:]
    private var belowSince: [Pool: ContinuousClock.Instant] = [:]

    public init(settings: Settings) {
        self.settings = settings
    }

    public mutating func decide(_ loads: [PoolLoad], now: ContinuousClock.Instant) -> [Directive] {
        loads.flatMap { decide($0, now: now) }
    }

    private mutating func decide(_ load: PoolLoad, now: ContinuousClock.Instant) -> [Directive] {
        guard let limits = settings.limits[load.pool] else { return [] }
        let pool = load.pool
        let count = load.active.count
        let (utilisation, resource) = load.utilisation
        // Below the minimum (at start, or after a server died): back up to it at once.
        if count + load.launching < limits.lowerBound {
            belowSince[pool] = nil
            return grow(
                load, by: limits.lowerBound - count - load.launching, utilisation,
                "below the minimum of \(limits.lowerBound)")
        }
        let quiet = quietUntil[pool].map { now < $0 } ?? false
        if utilisation > settings.upper {
            belowSince[pool] = nil
            guard !quiet, load.launching == 0 else { return [] }
            // Enough servers to bring the pool back to the middle of the band, not one per tick.
            let target = (settings.lower + settings.upper) / 2
            let wanted = Int((Double(count) * utilisation / target).rounded(.up)) - count
            let room = limits.upperBound - count
            guard room > 0 else { return [] }
            quietUntil[pool] = now + settings.cooldown
            let reason = "\(resource) at \(percent(utilisation)) > \(percent(settings.upper))"
            return grow(load, by: min(max(wanted, 1), room), utilisation, reason)
        }
        guard utilisation < settings.lower, count > limits.lowerBound, load.launching == 0 else {
            belowSince[pool] = nil
            return []
        }
        let since = belowSince[pool] ?? now
        belowSince[pool] = since
        guard now - since >= settings.scaleDownAfter, !quiet else { return [] }
        // Without one server the rest must stay at or below the middle of the band (so a wobble
        // does not take them over the upper threshold and back), and hold what jobs reserved.
        let remaining = Double(count - 1)
        let projected = utilisation * Double(count) / remaining
        let projectedAllocation = load.allocation * Double(count) / remaining
        guard projected <= (settings.lower + settings.upper) / 2, projectedAllocation <= 1 else { return [] }
        let victim = load.active.min {
            ($0.allocation, $0.capacity, $1.id) < ($1.allocation, $1.capacity, $0.id)
        }!
        quietUntil[pool] = now + settings.cooldown
        belowSince[pool] = nil
        let reason =
            "\(resource) at \(percent(utilisation)) < \(percent(settings.lower)) for \(settings.scaleDownAfter)"
        return [.drain(victim.id, pool, utilisation: utilisation, reason: reason)]
    }

    /// Draining servers first (busiest first: they hold the most), then new ones.
    private func grow(_ load: PoolLoad, by count: Int, _ utilisation: Double, _ reason: String) -> [Directive] {
        let reactivated = load.draining.sorted { ($0.capacity, $1.id) > ($1.capacity, $0.id) }.prefix(count)
        var directives = reactivated.map {
            Directive.reactivate($0.id, load.pool, utilisation: utilisation, reason: reason)
        }
        if count > reactivated.count {
            directives.append(
                .launch(load.pool, count: count - reactivated.count, utilisation: utilisation, reason: reason))
        }
        return directives
    }

    private func percent(_ value: Double) -> String { "\(Units.trimmed((value * 1000).rounded() / 10))%" }
}
