import PocketProtocol

/// What a node of one tier offers and what its resources cost.
public struct TierProfile: Hashable, Sendable {
    /// Bytes per second one node serves.
    public var nodeThroughput: UInt64
    /// Bytes one node holds.
    public var nodeCapacity: UInt64
    /// US dollars per GB (10⁹ bytes) held for an hour.
    public var pricePerGBHour: Double
    /// US dollars per Gb/s (10⁹ bits per second) reserved for an hour.
    public var pricePerGbpsHour: Double

    public init(nodeThroughput: UInt64, nodeCapacity: UInt64, pricePerGBHour: Double, pricePerGbpsHour: Double) {
        self.nodeThroughput = nodeThroughput
        self.nodeCapacity = nodeCapacity
        self.pricePerGBHour = pricePerGBHour
        self.pricePerGbpsHour = pricePerGbpsHour
    }

    /// Dollars per hour for `throughput` bytes/s and `capacity` bytes.
    public func cost(throughput: Double, capacity: Double) -> Double {
        capacity / 1e9 * pricePerGBHour + throughput * 8 / 1e9 * pricePerGbpsHour
    }

    public var nodePricePerHour: Double { cost(throughput: Double(nodeThroughput), capacity: Double(nodeCapacity)) }
}

/// Turns a job's hints into an allocation per tier, as the Pocket paper's controller does: the
/// throughput from the peak-throughput hint or from max lambdas × per-lambda throughput; a missing
/// throughput or capacity derived from the tier's node shape; no hints at all → `defaultNodes`
/// nodes' worth. Latency-sensitive jobs get DRAM; the others are offered every tier, cheapest first.
///
/// Default prices (AWS EC2 on-demand, us-east-1, Linux; docs/rightsizing.md has the arithmetic):
/// a Gb/s-hour is the compute and network of a c5.2xlarge ($0.34/h) spread over the 8 Gb/s a node
/// sustains (the paper's measurement), $0.0425; HDD nodes are disk-bound at 4.8 Gb/s, so the same
/// $0.34 buys less, $0.0708. A GB-hour is the rest of the tier's instance price over its storage:
/// DRAM r5.2xlarge $0.504/h for 64 GiB, SSD i3en.xlarge $0.452/h for 2,500 GB NVMe, HDD d3.xlarge
/// $0.499/h for 6,000 GB.
public struct RightsizingPolicy: Hashable, Sendable {
    /// Bytes per second each concurrent lambda needs (the paper: 600 Mb/s).
    public var perLambdaThroughput: UInt64 = 75_000_000
    /// Nodes' worth a job gets when it gives neither throughput nor capacity (the paper: two).
    public var defaultNodes: Double = 2
    public var tiers: [Tier: TierProfile] = [
        .dram: TierProfile(
            nodeThroughput: 1_000_000_000, nodeCapacity: 64 << 30, pricePerGBHour: 0.164 / 68.719_476_736,
            pricePerGbpsHour: 0.34 / 8),
        .ssd: TierProfile(
            nodeThroughput: 1_000_000_000, nodeCapacity: 2_500_000_000_000, pricePerGBHour: 0.112 / 2500,
            pricePerGbpsHour: 0.34 / 8),
        .hdd: TierProfile(
            nodeThroughput: 600_000_000, nodeCapacity: 6_000_000_000_000, pricePerGBHour: 0.159 / 6000,
            pricePerGbpsHour: 0.34 / 4.8),
    ]

    public static let maxLambdas: UInt32 = 1_000_000

    public init() {}

    public func profile(_ tier: Tier) -> TierProfile { tiers[tier]! }

    public func validate(_ hints: JobHints) throws(PocketError) {
        if let lambdas = hints.maxLambdas, lambdas == 0 || lambdas > Self.maxLambdas {
            throw PocketError(.invalidArgument, "max_lambdas must be between 1 and \(Self.maxLambdas)")
        }
        if hints.peakThroughput == 0 { throw PocketError(.invalidArgument, "peak_throughput must be positive") }
        if hints.capacity == 0 { throw PocketError(.invalidArgument, "capacity must be positive") }
        if let copies = hints.replication, !(1...3).contains(copies) {
            throw PocketError(.invalidArgument, "replication must be 1, 2 or 3")
        }
    }

    /// The allocation the hints call for on `tier`.
    public func allocation(for hints: JobHints, on tier: Tier) -> Allocation {
        let node = profile(tier)
        let nodeThroughput = Double(node.nodeThroughput)
        let nodeCapacity = Double(node.nodeCapacity)
        let givenThroughput =
            hints.peakThroughput.map { Double($0) } ?? hints.maxLambdas.map { Double($0) * Double(perLambdaThroughput) }
        let givenCapacity = hints.capacity.map { Double($0) }
        let throughput: Double
        let capacity: Double
        switch (givenThroughput, givenCapacity) {
        case let (rate?, size?): (throughput, capacity) = (rate, size)
        case let (rate?, nil): (throughput, capacity) = (rate, rate / nodeThroughput * nodeCapacity)
        case let (nil, size?): (throughput, capacity) = (size / nodeCapacity * nodeThroughput, size)
        case (nil, nil): (throughput, capacity) = (defaultNodes * nodeThroughput, defaultNodes * nodeCapacity)
        }
        // Every copy of a block takes room; the throughput the job sees stays what it asked for.
        let stored = capacity * Double(hints.copies)
        let rounded = (throughput: max(1, throughput.rounded()), capacity: max(1, stored.rounded()))
        return Allocation(
            tier: tier, throughput: UInt64(rounded.throughput), capacity: UInt64(rounded.capacity),
            nodes: max(rounded.throughput / nodeThroughput, rounded.capacity / nodeCapacity),
            costPerHour: node.cost(throughput: rounded.throughput, capacity: rounded.capacity))
    }

    /// The tiers a job may use, each with its allocation, cheapest first (a faster tier first on a
    /// tie). Latency-sensitive jobs are offered DRAM alone.
    public func candidates(for hints: JobHints) -> [Allocation] {
        if hints.latencySensitive == true { return [allocation(for: hints, on: .dram)] }
        return Tier.allCases.map { allocation(for: hints, on: $0) }.sorted {
            ($0.costPerHour, $0.tier) < ($1.costPerHour, $1.tier)
        }
    }

    /// The cheapest allocation for the hints, ignoring which servers exist.
    public func preferred(for hints: JobHints) -> Allocation { candidates(for: hints)[0] }
}
