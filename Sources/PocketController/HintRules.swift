import PocketProtocol

/// Checks hints and turns them into an allocation with the paper's rules of thumb: 600 Mb/s per
/// lambda, 8 Gb/s nodes, two nodes' worth when nothing is known. Tier choice and placement across
/// tiers are the rightsizing policy's job; until then every job is served from DRAM.
public enum HintRules {
    public static let perLambdaThroughput: UInt64 = 75_000_000  // 600 Mb/s
    public static let nodeThroughput: UInt64 = 1_000_000_000  // 8 Gb/s
    public static let nodeCapacity: UInt64 = 60 << 30
    public static let maxLambdas: UInt32 = 1_000_000

    public static func validate(_ hints: JobHints) throws(PocketError) {
        if let lambdas = hints.maxLambdas, lambdas == 0 || lambdas > maxLambdas {
            throw PocketError(.invalidArgument, "max_lambdas must be between 1 and \(maxLambdas)")
        }
        if hints.peakThroughput == 0 { throw PocketError(.invalidArgument, "peak_throughput must be positive") }
        if hints.capacity == 0 { throw PocketError(.invalidArgument, "capacity must be positive") }
    }

    public static func allocation(for hints: JobHints) -> Allocation {
        let throughput =
            hints.peakThroughput ?? hints.maxLambdas.map { UInt64($0) * perLambdaThroughput } ?? 2 * nodeThroughput
        let capacity = hints.capacity ?? 2 * nodeCapacity
        return Allocation(tier: .dram, throughput: throughput, capacity: capacity)
    }
}
