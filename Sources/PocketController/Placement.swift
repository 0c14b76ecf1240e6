import PocketProtocol

/// A storage server as placement sees it: what it declared and what allocations already reserve.
public struct PlacementServer: Hashable, Sendable {
    public var id: ServerID
    public var tier: Tier
    public var throughput: Double
    public var capacity: Double
    public var reservedThroughput: Double = 0
    public var reservedCapacity: Double = 0

    public init(id: ServerID, tier: Tier, throughput: Double, capacity: Double) {
        self.id = id
        self.tier = tier
        self.throughput = throughput
        self.capacity = capacity
    }

    /// The largest fraction of an allocation this server can still take.
    func freeFraction(of allocation: Allocation) -> Double {
        let byThroughput = (throughput - reservedThroughput) / Double(allocation.throughput)
        let byCapacity = (capacity - reservedCapacity) / Double(allocation.capacity)
        return max(0, min(byThroughput, byCapacity))
    }

    /// How full its reservations make it: the larger of its throughput and capacity shares.
    public var utilisation: Double {
        max(reservedThroughput / max(throughput, 1), reservedCapacity / max(capacity, 1))
    }
}

/// Servers a provisioner could still start, per tier: the shape of the tier's new servers and how
/// many more the tier may have.
public struct ProvisioningRoom: Sendable {
    public var tiers: [Tier: (throughput: UInt64, capacity: UInt64, servers: Int)]

    public init(_ tiers: [Tier: (throughput: UInt64, capacity: UInt64, servers: Int)]) {
        self.tiers = tiers
    }
}

/// Packs one job's allocation onto storage servers: the cheapest tier that can hold it whole, its
/// fullest servers first (so lightly used ones stay free to drain); more servers from the
/// provisioner when that tier has too little room (up to its limit); failing both, a mix of tiers,
/// cheapest first; failing that, the cheapest tier over-committed.
public enum Placement {
    public enum Decision: Equatable, Sendable {
        /// Fractions of the job per server, summing to 1, with the allocation they give.
        case placed(Allocation, shares: [ServerID: Double])
        /// Start `count` servers of `tier` and place again once they have registered.
        case launch(Tier, count: Int)
    }

    static let epsilon = 1e-9
    /// When mixing tiers, servers that could give less than this fraction of the job are left out:
    /// a sliver of a job on a server is clutter in its weight map, not capacity.
    static let smallestMixedShare = 0.01

    /// `candidates` are the job's allocations per tier, cheapest first; `servers` are the active
    /// storage servers; `room` is what a provisioner could add (nil: none, or none left to try).
    public static func place(
        _ candidates: [Allocation], on servers: [PlacementServer], room: ProvisioningRoom?,
        policy: RightsizingPolicy
    ) throws(PocketError) -> Decision {
        let available = candidates.filter { candidate in
            servers.contains { $0.tier == candidate.tier } || room?.tiers[candidate.tier] != nil
        }
        guard !available.isEmpty else {
            let tiers = candidates.map { "\($0.tier)" }.joined(separator: " or ")
            throw PocketError(.noSpace, "no \(tiers) storage server is available for this job")
        }
        // The cheapest tier with room for the whole job, or room a provisioner can make.
        for candidate in available {
            let tierServers = servers.filter { $0.tier == candidate.tier }
            let free = tierServers.reduce(0) { $0 + $1.freeFraction(of: candidate) }
            if free >= 1 - epsilon {
                return .placed(candidate, shares: fill(candidate, onto: tierServers, upTo: 1).shares)
            }
            if let shape = room?.tiers[candidate.tier], shape.servers > 0 {
                let missing = 1 - free
                let needed = max(
                    missing * Double(candidate.throughput) / Double(max(shape.throughput, 1)),
                    missing * Double(candidate.capacity) / Double(max(shape.capacity, 1)))
                // As many as the limit allows; whatever still does not fit is over-committed.
                let count = min(Int((needed - epsilon).rounded(.up)), shape.servers)
                return .launch(candidate.tier, count: max(count, 1))
            }
        }
        // No tier holds it alone: take what is free on each tier, cheapest first, all with the
        // cheapest tier's throughput and capacity.
        let primary = available.first { candidate in servers.contains { $0.tier == candidate.tier } }
        guard let primary else {
            throw PocketError(.noSpace, "no \(available[0].tier) storage server has registered yet")
        }
        var shares: [ServerID: Double] = [:]
        var perTier: [Tier: Double] = [:]
        var remaining = 1.0
        for candidate in available where remaining > epsilon {
            var sized = primary
            sized.tier = candidate.tier
            let (taken, total) = fill(
                sized, onto: servers.filter { $0.tier == candidate.tier }, upTo: remaining, smallest: smallestMixedShare
            )
            shares.merge(taken) { $0 + $1 }
            perTier[candidate.tier, default: 0] += total
            remaining -= total
        }
        var allocation = primary
        if remaining > epsilon {
            // Over-commit the cheapest tier that has servers, in proportion to their size.
            let tierServers = servers.filter { $0.tier == primary.tier }
            let size = tierServers.reduce(0) { $0 + $1.capacity }
            for server in tierServers {
                let part = size > 0 ? server.capacity / size : 1 / Double(tierServers.count)
                shares[server.id, default: 0] += remaining * part
            }
            perTier[primary.tier, default: 0] += remaining
            allocation.overcommitted = true
        }
        // The tier holding most of the job names the allocation; the cost adds up each tier's part.
        allocation.tier = perTier.sorted { ($1.value, $0.key) < ($0.value, $1.key) }[0].key
        allocation.costPerHour = perTier.reduce(0) { total, part in
            total + part.value
                * policy.profile(part.key).cost(
                    throughput: Double(primary.throughput), capacity: Double(primary.capacity))
        }
        return .placed(allocation, shares: shares)
    }

    /// Gives servers their free fraction of `allocation`, fullest first, until `limit` is reached.
    static func fill(
        _ allocation: Allocation, onto servers: [PlacementServer], upTo limit: Double, smallest: Double = epsilon
    ) -> (shares: [ServerID: Double], total: Double) {
        let ordered = servers.sorted { ($1.utilisation, $0.id) < ($0.utilisation, $1.id) }
        var shares: [ServerID: Double] = [:]
        var total = 0.0
        for server in ordered where total < limit - epsilon {
            let share = min(server.freeFraction(of: allocation), limit - total)
            if share >= smallest || (share > epsilon && share >= limit - total - epsilon) {
                shares[server.id] = share
                total += share
            }
        }
        return (shares, total)
    }
}
