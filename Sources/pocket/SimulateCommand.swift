import ArgumentParser
import Foundation
import PocketController
import PocketProtocol
import PocketSimulation

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the controller's rightsizing and autoscaling against a simulated cluster over a day.")

    @Option(help: "Jobs arriving over the day.") var jobs = 10_000
    @Option(help: "Most storage servers per tier.") var maxServers = 1_000
    @Option(help: "Simulated hours.") var hours = 24.0
    @Option(help: "Simulated seconds between heartbeats and autoscaler rounds.") var step = 10.0
    @Option(help: "Simulated seconds from a launch to the server's registration.") var bootDelay = 5.0
    @Option(help: "Seed of the trace.") var seed: UInt64 = 1
    @Option(help: "Rightsizing policy JSON (see `pocket controller --show-policy`).") var policy: String?
    @Option(help: "Write servers and utilisation per simulated minute to this CSV file.") var csv: String?

    func validate() throws {
        guard jobs > 0, maxServers > 0, hours > 0, step > 0, bootDelay >= 0 else {
            throw ValidationError("counts and durations must be positive")
        }
    }

    func run() async throws {
        var options = Simulation.Options()
        options.jobs = jobs
        options.maxServersPerTier = maxServers
        options.day = .milliseconds(Int64(hours * 3_600_000))
        options.step = .milliseconds(Int64(step * 1000))
        options.bootDelay = .milliseconds(Int64(bootDelay * 1000))
        options.seed = seed
        var rightsizing = RightsizingPolicy()
        if let policy { rightsizing = try RightsizingPolicy(json: Data(contentsOf: URL(fileURLWithPath: policy))) }
        let report = Simulation(options: options, policy: rightsizing).run()
        if let csv { try write(report, to: csv) }
        print(summary(report, policy: rightsizing, hours: hours))
    }

    func write(_ report: Simulation.Report, to path: String) throws {
        var lines = [
            "minute,jobs,dram_servers,ssd_servers,hdd_servers,dram_utilisation,ssd_utilisation,hdd_utilisation"
        ]
        for sample in report.samples {
            let minute = Int(sample.time.components.seconds / 60)
            let servers = Tier.allCases.map { "\(sample.servers[$0] ?? 0)" }
            let utilisation = Tier.allCases.map { String(format: "%.4f", sample.utilisation[$0] ?? 0) }
            lines.append((["\(minute)", "\(sample.jobs)"] + servers + utilisation).joined(separator: ","))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }

    func summary(_ report: Simulation.Report, policy: RightsizingPolicy, hours: Double) -> String {
        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        let large = report.placements.filter { $0.servers >= report.placements.map(\.servers).max()! / 2 }.map(\.micros)
        var lines = [
            "simulated \(Units.trimmed(hours)) h: \(report.admitted) jobs admitted (\(report.overcommitted) over-committed, "
                + "\(report.refused) refused), \(report.events.count) scaling events, in \(Units.trimmed(report.wallSeconds)) s",
            String(
                format: "placement of a new job: p50 %.1f µs, p99 %.1f µs, max %.1f µs (%d placements; with at least "
                    + "half the peak servers: p50 %.1f µs, p99 %.1f µs)",
                percentile(report.placements.map(\.micros), 0.5), percentile(report.placements.map(\.micros), 0.99),
                report.placements.map(\.micros).max() ?? 0, report.placements.count, percentile(large, 0.5),
                percentile(large, 0.99)),
            "scaling events: "
                + ScalingEvent.Action.allCases.map { action in
                    "\(report.events.filter { $0.action == action }.count) \(action)"
                }.joined(separator: ", ")
                + " (launches for a job's allocation: "
                + "\(report.events.filter { $0.action == .launch && $0.reason.hasPrefix("a job") }.count))",
            String(
                format: "autoscaler round (loads of every server + decisions + releases): p50 %.1f µs, p99 %.1f µs",
                percentile(report.decisions, 0.5), percentile(report.decisions, 0.99)),
            "",
            "tier  peak servers  server-hours  elastic cost  static peak cost  saved",
        ]
        var elasticTotal = 0.0
        var staticTotal = 0.0
        for tier in Tier.allCases {
            let price = policy.profile(tier).nodePricePerHour
            let serverHours = (report.serverSeconds[tier] ?? 0) / 3600
            let peak = report.peakServers[tier] ?? 0
            let elastic = serverHours * price
            let fixed = Double(peak) * hours * price
            elasticTotal += elastic
            staticTotal += fixed
            lines.append(
                pad("\(tier)", 4) + pad("\(peak)", 14, right: true)
                    + pad(String(format: "%.1f", serverHours), 14, right: true)
                    + pad(Units.formatDollars(elastic), 14, right: true)
                    + pad(Units.formatDollars(fixed), 18, right: true)
                    + pad(fixed > 0 ? "\(Int((100 * (1 - elastic / fixed)).rounded()))%" : "-", 7, right: true))
        }
        lines.append(
            pad("total", 32) + pad(Units.formatDollars(elasticTotal), 14, right: true)
                + pad(Units.formatDollars(staticTotal), 18, right: true)
                + pad(
                    staticTotal > 0 ? "\(Int((100 * (1 - elasticTotal / staticTotal)).rounded()))%" : "-", 7,
                    right: true))
        return lines.joined(separator: "\n")
    }
}
