import Foundation
import Testing

@testable import PocketController
@testable import PocketProtocol

/// The policy against figures worked out by hand from the default node shapes and prices
/// (docs/rightsizing.md): DRAM $0.504 per 8 Gb/s, 64 GiB node; SSD $0.452 per 8 Gb/s, 2,500 GB node;
/// HDD $0.499 per 4.8 Gb/s, 6,000 GB node; 600 Mb/s per lambda; two nodes with no hints.
@Suite struct RightsizingPolicyTests {
    struct Row: CustomTestStringConvertible, Sendable {
        var hints: JobHints
        var tier: Tier
        var throughput: Double
        var capacity: Double
        var nodes: Double
        var nodeCount: Int
        var cost: Double
        var testDescription: String { "\(hints) → \(tier)" }
    }

    static let dramNode = Double(64 << 30)

    static let rows: [Row] = [
        // No hints: two nodes' worth on the cheapest node (SSD); latency-sensitive: two DRAM nodes.
        Row(hints: JobHints(), tier: .ssd, throughput: 2e9, capacity: 5e12, nodes: 2, nodeCount: 2, cost: 0.904),
        Row(
            hints: JobHints(latencySensitive: true), tier: .dram, throughput: 2e9, capacity: 2 * dramNode, nodes: 2,
            nodeCount: 2, cost: 1.008),
        Row(
            hints: JobHints(latencySensitive: false), tier: .ssd, throughput: 2e9, capacity: 5e12, nodes: 2,
            nodeCount: 2, cost: 0.904),
        // max_lambdas only: 100 × 600 Mb/s = 60 Gb/s = 7.5 nodes; capacity follows the node shape.
        Row(
            hints: JobHints(maxLambdas: 100), tier: .ssd, throughput: 7.5e9, capacity: 7.5 * 2.5e12, nodes: 7.5,
            nodeCount: 8, cost: 3.39),
        Row(
            hints: JobHints(latencySensitive: true, maxLambdas: 100), tier: .dram, throughput: 7.5e9,
            capacity: 7.5 * dramNode, nodes: 7.5, nodeCount: 8, cost: 3.78),
        // The paper's 250-lambda job: 150 Gb/s, 18.75 8-Gb/s nodes → 19 DRAM nodes.
        Row(
            hints: JobHints(latencySensitive: true, maxLambdas: 250), tier: .dram, throughput: 18.75e9,
            capacity: 18.75 * dramNode, nodes: 18.75, nodeCount: 19, cost: 9.45),
        // Throughput only: one 8 Gb/s node's worth.
        Row(
            hints: JobHints(peakThroughput: 1_000_000_000), tier: .ssd, throughput: 1e9, capacity: 2.5e12, nodes: 1,
            nodeCount: 1, cost: 0.452),
        // A peak-throughput hint wins over max_lambdas.
        Row(
            hints: JobHints(maxLambdas: 100, peakThroughput: 2_000_000_000), tier: .ssd, throughput: 2e9,
            capacity: 5e12, nodes: 2, nodeCount: 2, cost: 0.904),
        // Capacity only: HDD holds it cheapest (two 6 TB nodes: $0.998 against 4.8 SSD nodes: $2.17).
        Row(
            hints: JobHints(capacity: 12_000_000_000_000), tier: .hdd, throughput: 1.2e9, capacity: 12e12, nodes: 2,
            nodeCount: 2, cost: 0.998),
        // Capacity-heavy, throughput-light: HDD (1000 GB × $0.0000265 + 0.08 Gb/s × $0.0708).
        Row(
            hints: JobHints(peakThroughput: 10_000_000, capacity: 1_000_000_000_000), tier: .hdd, throughput: 1e7,
            capacity: 1e12, nodes: 1.0 / 6, nodeCount: 1, cost: 0.0265 + 0.08 * 0.34 / 4.8),
        // Throughput-heavy, small: SSD unless latency-sensitive, which pays DRAM's capacity price.
        Row(
            hints: JobHints(peakThroughput: 1_000_000_000, capacity: 100_000_000_000), tier: .ssd, throughput: 1e9,
            capacity: 1e11, nodes: 1, nodeCount: 1, cost: 0.34 + 100 * 0.0000448),
        Row(
            hints: JobHints(latencySensitive: true, peakThroughput: 1_000_000_000, capacity: 100_000_000_000),
            tier: .dram, throughput: 1e9, capacity: 1e11, nodes: 1e11 / dramNode, nodeCount: 2,
            cost: 0.34 + 100 * 0.164 / 68.719_476_736),
    ]

    @Test(arguments: rows) func hintsBecomeTheCheapestAllocation(_ row: Row) {
        let allocation = RightsizingPolicy().preferred(for: row.hints)
        #expect(allocation.tier == row.tier)
        #expect(abs(Double(allocation.throughput) - row.throughput) <= 1)
        #expect(abs(Double(allocation.capacity) - row.capacity) <= 1)
        #expect(abs(allocation.nodes - row.nodes) < 1e-6)
        #expect(allocation.nodeCount == row.nodeCount)
        #expect(abs(allocation.costPerHour - row.cost) < 1e-4, "cost \(allocation.costPerHour)")
    }

    @Test func defaultPricesAddUpToTheInstancePrices() {
        let policy = RightsizingPolicy()
        #expect(abs(policy.profile(.dram).nodePricePerHour - 0.504) < 1e-9)
        #expect(abs(policy.profile(.ssd).nodePricePerHour - 0.452) < 1e-9)
        #expect(abs(policy.profile(.hdd).nodePricePerHour - 0.499) < 1e-9)
        #expect(policy.perLambdaThroughput * 8 == 600_000_000)
    }

    @Test func latencySensitiveJobsAreOfferedDRAMAlone() {
        let policy = RightsizingPolicy()
        #expect(policy.candidates(for: JobHints(latencySensitive: true, capacity: 1 << 40)).map(\.tier) == [.dram])
        #expect(policy.candidates(for: JobHints(capacity: 1 << 40)).map(\.tier) == [.hdd, .ssd, .dram])
    }

    @Test func policyFilesOverrideWhatTheyName() throws {
        let json = """
            { "per_lambda_throughput": "1Gb/s", "default_nodes": 1,
              "tiers": { "dram": { "node_capacity": "16GiB", "price_per_gb_hour": 0 },
                         "hdd": { "node_throughput": 300000000 } } }
            """
        let policy = try RightsizingPolicy(json: Data(json.utf8))
        #expect(policy.perLambdaThroughput == 125_000_000)
        #expect(policy.defaultNodes == 1)
        #expect(policy.profile(.dram).nodeCapacity == 16 << 30)
        #expect(policy.profile(.dram).pricePerGBHour == 0)
        #expect(policy.profile(.dram).pricePerGbpsHour == RightsizingPolicy().profile(.dram).pricePerGbpsHour)
        #expect(policy.profile(.hdd).nodeThroughput == 300_000_000)
        #expect(try RightsizingPolicy(json: Data(RightsizingPolicy().json.utf8)).perLambdaThroughput == 75_000_000)
    }

    @Test(arguments: [
        "[]", "{\"tiers\": {\"tape\": {}}}", "{\"default_nodes\": -1}", "{\"per_lambda_throughput\": \"fast\"}",
        "{\"tiers\": {\"ssd\": {\"node_capacity\": 0}}}", "{\"default_node\": 2}",
        "{\"tiers\": {\"ssd\": {\"price\": 1}}}",
    ])
    func badPolicyFilesAreRefused(_ json: String) {
        #expect { try RightsizingPolicy(json: Data(json.utf8)) } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
    }

    @Test(arguments: [JobHints(maxLambdas: 0), JobHints(maxLambdas: 2_000_000), JobHints(peakThroughput: 0)])
    func badHintsAreRefused(_ hints: JobHints) {
        #expect { try RightsizingPolicy().validate(hints) } throws: { ($0 as? PocketError)?.code == .invalidArgument }
    }

    @Test func dollarsKeepFourSignificantDigits() {
        #expect(Units.formatDollars(0.904) == "$0.9040")
        #expect(Units.formatDollars(0.0321667) == "$0.03217")
        #expect(Units.formatDollars(3.78) == "$3.78")
        #expect(Units.formatDollars(0) == "$0")
    }
}
