import ArgumentParser
import Foundation
import PocketBench
import PocketClient
import PocketProtocol

struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Many concurrent clients doing mixed put, get and delete on a temporary job; fails on any error.")

    @Option(help: "Concurrent clients (tasks).") var clients = 250
    @Option(help: "Seconds to run.") var duration = 60.0
    @Option(help: "Keys per client.") var keys = 8
    @Option(help: "Seed of the clients' choices.") var seed: UInt64 = 1
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var controller: ControllerOption
    @OptionGroup var tls: TLSOptions

    func validate() throws {
        guard clients > 0, keys > 0, duration > 0 else {
            throw ValidationError("counts and --duration must be positive")
        }
    }

    func run() async throws {
        try tls.apply(.client)
        var options = Soak.Options()
        options.clients = clients
        options.duration = .milliseconds(Int64(duration * 1000))
        options.keys = keys
        options.seed = seed
        let client = try controller.client()
        let name = "soak-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let outcome = await capture {
            let job = try await client.registerJob(name)
            let report = await Soak.run(options, job: job)
            try await client.deregisterJob(job)
            return report
        }
        await client.close()
        let report = try outcome.get()
        if json {
            try printJSON(report)
        } else {
            print(
                "\(report.clients) clients, \(Int(report.seconds)) s: \(report.operations) operations "
                    + "(\(Int(report.ops_per_s)) ops/s), \(report.errors) errors")
            for (label, operation) in [("put", report.put), ("get", report.get), ("delete", report.delete)] {
                print(
                    "  \(label): \(operation.count), p50 \(Int(operation.p50_us)) µs, p99 \(Int(operation.p99_us)) µs, "
                        + "max \(Int(operation.max_us)) µs")
            }
            for sample in report.error_samples { print("  error: \(sample)") }
        }
        if report.errors > 0 { throw ExitCode(1) }
    }
}
