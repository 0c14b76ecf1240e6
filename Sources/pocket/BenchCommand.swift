import ArgumentParser
import Foundation
import PocketBench
import PocketClient
import PocketProtocol

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure put or get throughput and latency on a temporary job.")

    @Option(help: "put or get.") var op = "put"
    @Option(help: "Object size.") var size = ByteSize(bytes: 1024)
    @Option(help: "Operations to run.") var count = 10_000
    @Option(help: "Concurrent operations.") var concurrency = 1
    @Option(help: "Run for this many seconds instead, cycling over --count objects (at most 1000).")
    var duration: Double?
    @Option(help: "Start at most this many operations per second (a steady load rather than all it can).")
    var rate: Double?
    @Option(
        help: "Cycle over this many keys, so puts replace objects (by default each operation up to 1000 has its own).")
    var keys: Int?
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup(title: "Hints for the bench's job") var hintOptions: HintOptions
    @OptionGroup var controller: ControllerOption
    @OptionGroup var tls: TLSOptions

    func validate() throws {
        guard Bench.Operation(rawValue: op) != nil else { throw ValidationError("--op must be put or get") }
        guard count > 0, concurrency > 0 else { throw ValidationError("--count and --concurrency must be positive") }
        guard size.bytes <= 1 << 30 else { throw ValidationError("--size must be at most 1 GiB") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        if let keys, !(1...1000).contains(keys) { throw ValidationError("--keys must be 1 to 1000") }
    }

    func run() async throws {
        try tls.apply(.client)
        var options = Bench.Options()
        options.operation = Bench.Operation(rawValue: op)!
        options.size = Int(size.bytes)
        options.count = count
        options.concurrency = concurrency
        options.duration = duration.map { .milliseconds(Int64($0 * 1000)) }
        options.rate = rate
        options.keys = keys
        let client = try controller.client()
        let name = "bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let outcome = await capture {
            let job = try await client.registerJob(name, hints: hintOptions.hints)
            let result = await capture { try await Bench.run(options, job: job) }
            try await client.deregisterJob(job)
            return try result.get()
        }
        await client.close()
        let result = try outcome.get()
        if json {
            try printJSON(result)
        } else {
            print(
                "\(result.op) \(Units.formatSize(UInt64(result.size))) × \(result.count), concurrency \(result.concurrency): "
                    + "\(Int(result.ops_per_s)) ops/s, \(Units.formatRate(UInt64(result.bytes_per_s))), "
                    + "p50 \(Int(result.p50_us)) µs, p99 \(Int(result.p99_us)) µs, max \(Int(result.max_us)) µs")
        }
    }
}
