import ArgumentParser
import Foundation
import PocketClient
import PocketProtocol
import PocketRPC

/// How a command proves it holds a job: `--token`, `POCKET_TOKEN`, or the token saved at registration.
struct TokenOption: ParsableArguments {
    @Option(
        name: .customLong("token"),
        help: "The job's token (default $POCKET_TOKEN, or the one saved by `pocket job register`).")
    var explicitToken: String?

    func token(for job: String, controller: Endpoint) throws -> String {
        if let explicitToken { return explicitToken }
        if let token = ProcessInfo.processInfo.environment["POCKET_TOKEN"], !token.isEmpty { return token }
        if let token = TokenStore(controller: controller).load(job: job) { return token }
        throw ValidationError("no token for job '\(job)': register it here, or pass --token or POCKET_TOKEN")
    }
}

/// A job's hints on the command line.
struct HintOptions: ParsableArguments {
    @Flag(help: "The job needs low latency (DRAM).") var latencySensitive = false
    @Option(help: "Maximum concurrent lambdas.") var lambdas: UInt32?
    @Option(help: "Peak aggregate throughput, e.g. 2GB/s or 8Gb/s.") var throughput: ByteRate?
    @Option(help: "Capacity, e.g. 10GiB.") var capacity: ByteSize?
    @Option(help: "Copies of each block on different storage servers: 1, 2 or 3.") var replication: UInt8?

    var hints: JobHints {
        JobHints(
            latencySensitive: latencySensitive ? true : nil, maxLambdas: lambdas,
            peakThroughput: throughput?.bytesPerSecond, capacity: capacity?.bytes, replication: replication)
    }
}

/// A job opened by name, for the object commands.
struct JobAccess: ParsableArguments {
    @OptionGroup var controller: ControllerOption
    @OptionGroup var token: TokenOption
    @OptionGroup var tls: TLSOptions

    func open(_ name: String) async throws -> (PocketClient, PocketJob) {
        try tls.apply(.client)
        let endpoint = try controller.endpoint
        let client = PocketClient(controller: endpoint)
        do {
            return (client, try await client.openJob(name, token: try token.token(for: name, controller: endpoint)))
        } catch {
            await client.close()
            throw error
        }
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Register, list, show and deregister jobs.",
        subcommands: [Register.self, ListJobs.self, Show.self, Deregister.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a job; its token is saved for you.")

        @Argument(help: "The job's name (its directory under the mount).") var name: String
        @OptionGroup var hintOptions: HintOptions
        @Flag(help: "Print the token on standard output.") var printToken = false
        @OptionGroup var controller: ControllerOption
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            try tls.apply(.client)
            let client = try controller.client()
            let job: PocketJob
            do {
                job = try await client.registerJob(name, hints: hintOptions.hints)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
            let store = TokenStore(controller: try controller.endpoint)
            try store.save(job: name, token: job.token)
            if printToken {
                print(job.token)
            } else {
                print("registered job \(name) (id \(job.id)); token saved in \(store.directory.path)")
            }
        }
    }

    struct ListJobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the registered jobs.")
        @OptionGroup var controller: ControllerOption
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            try tls.apply(.client)
            let client = try controller.client()
            let result = await capture { try await client.listJobs() }
            await client.close()
            let jobs = try result.get()
            var table = TextTable(["NAME", "TIER", "THROUGHPUT", "CAPACITY", "COST/H", "SERVERS", "METADATA"])
            for job in jobs {
                table.add([
                    job.name, "\(job.allocation.tier)", Units.formatRate(job.allocation.throughput),
                    Units.formatSize(job.allocation.capacity), Units.formatDollars(job.allocation.costPerHour),
                    "\(job.weightMap.entries.count)", job.metadataAddress,
                ])
            }
            print(table.render(), terminator: "")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a job's hints, allocation and weight map.")
        @Argument var name: String
        @OptionGroup var controller: ControllerOption
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            try tls.apply(.client)
            let client = try controller.client()
            let result = await capture { try await client.status() }
            await client.close()
            let status = try result.get()
            guard let job = status.jobs.first(where: { $0.name == name }) else {
                throw PocketError(.unknownJob, "no job named '\(name)'")
            }
            print(JobFormat.describe(job, servers: status.servers))
        }
    }

    struct Deregister: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deregister a job and free its data.")
        @Argument var name: String
        @OptionGroup var controller: ControllerOption
        @OptionGroup var token: TokenOption
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            try tls.apply(.client)
            let endpoint = try controller.endpoint
            let client = PocketClient(controller: endpoint)
            let secret = try token.token(for: name, controller: endpoint)
            let result = await capture { try await client.deregisterJob(name, token: secret) }
            await client.close()
            try result.get()
            TokenStore(controller: endpoint).remove(job: name)
            print("deregistered job \(name)")
        }
    }
}

enum JobFormat {
    static func describe(_ job: JobInfo, servers: [ServerInfo]) -> String {
        let hints = job.hints
        var lines = ["job \(job.name) (id \(job.id)), metadata server \(job.metadataAddress)"]
        lines.append(
            "  hints: latency_sensitive=\(hints.latencySensitive.map { $0 ? "1" : "0" } ?? "-") "
                + "max_lambdas=\(hints.maxLambdas.map(String.init) ?? "-") "
                + "peak_throughput=\(hints.peakThroughput.map(Units.formatRate) ?? "-") "
                + "capacity=\(hints.capacity.map(Units.formatSize) ?? "-") "
                + "replication=\(hints.replication.map(String.init) ?? "-")")
        let allocation = job.allocation
        lines.append(
            "  allocation: \(allocation.tier), \(Units.formatRate(allocation.throughput)), "
                + "\(Units.formatSize(allocation.capacity)) (\(allocation.nodesDescription) nodes' worth)"
                + (allocation.overcommitted ? ", over-committed: the cluster could not give it all" : ""))
        lines.append("  cost: \(Units.formatDollars(allocation.costPerHour)) per hour")
        lines.append("  weight map:")
        for entry in job.weightMap.entries {
            let server = servers.first { $0.id == entry.server }
            lines.append(
                "    server \(entry.server) (\(server.map { "\($0.tier) \($0.address)" } ?? "gone")): "
                    + formatWeight(entry.weight))
        }
        return lines.joined(separator: "\n")
    }
}
