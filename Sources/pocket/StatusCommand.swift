import ArgumentParser
import Foundation
import PocketClient
import PocketProtocol

extension Pocket {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the cluster's servers and jobs.")
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Show the controller's scaling decisions instead: time, action, pool, utilisation, reason.")
        var events = false
        @OptionGroup var controller: ControllerOption
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            try tls.apply(.client)
            let client = try controller.client()
            if events {
                let result = await capture { try await client.call(ListEvents()) }
                await client.close()
                try printEvents(try result.get().events)
                return
            }
            let result = await capture { try await client.status() }
            await client.close()
            let status = try result.get()
            if json {
                try printJSON(StatusJSON(status), pretty: true)
                return
            }
            var servers = TextTable([
                "ID", "KIND", "TIER", "ADDRESS", "STATE", "USED", "ALLOCATED", "CAPACITY", "THROUGHPUT ALLOC/DECL",
                "CPU", "IN/S", "OUT/S",
            ])
            for server in status.servers {
                let stats = server.stats
                let storage = server.kind == .storage
                servers.add([
                    "\(server.id)", "\(server.kind)", storage ? "\(server.tier)" : "-", server.address,
                    "\(server.state)", Units.formatSize(stats.usedBytes),
                    storage ? Units.formatSize(server.allocatedCapacity) : "-", Units.formatSize(stats.capacityBytes),
                    storage
                        ? "\(Units.formatRate(server.allocatedThroughput)) / \(Units.formatRate(server.throughput))"
                        : "-",
                    "\(Int((stats.cpu * 100).rounded()))%", Units.formatSize(stats.bytesInPerSecond),
                    Units.formatSize(stats.bytesOutPerSecond),
                ])
            }
            print(servers.render())
            var jobs = TextTable(["JOB", "TIER", "THROUGHPUT", "USED/CAPACITY", "COST/H", "WEIGHT MAP"])
            for job in status.jobs {
                let map = job.weightMap.entries.map { "\($0.server):\(formatWeight($0.weight))" }.joined(separator: " ")
                jobs.add([
                    job.name, "\(job.allocation.tier)" + (job.allocation.overcommitted ? "*" : ""),
                    Units.formatRate(job.allocation.throughput),
                    "\(Units.formatSize(job.usedBytes)) / \(Units.formatSize(job.allocation.capacity))",
                    Units.formatDollars(job.allocation.costPerHour), map,
                ])
            }
            print(status.jobs.isEmpty ? "no jobs" : jobs.render(), terminator: status.jobs.isEmpty ? "\n" : "")
            if status.jobs.contains(where: \.allocation.overcommitted) {
                print("* over-committed: the cluster could not give the whole allocation")
            }
        }
    }
}

extension Pocket.Status {
    func printEvents(_ events: [ScalingEvent]) throws {
        if json {
            try printJSON(events.map(EventJSON.init), pretty: true)
            return
        }
        guard !events.isEmpty else {
            print("no scaling decisions yet")
            return
        }
        let format = DateFormatter()
        format.dateFormat = "HH:mm:ss.SSS"
        var table = TextTable(["TIME", "ACTION", "POOL", "COUNT", "SERVERS", "UTILISATION", "REASON"])
        for event in events {
            let pool = event.kind == .metadata ? "metadata" : "\(event.tier) storage"
            table.add([
                format.string(from: Date(timeIntervalSince1970: Double(event.time) / 1000)), "\(event.action)", pool,
                "\(event.count)", "\(event.servers)", "\(Int((event.utilisation * 100).rounded()))%", event.reason,
            ])
        }
        print(table.render(), terminator: "")
    }
}

/// One scaling decision in `pocket status --events --json`.
struct EventJSON: Encodable {
    var time_ms: Int64
    var action: String
    var kind: String
    var tier: String
    var count: UInt32
    var servers: UInt32
    var utilisation: Double
    var reason: String

    init(_ event: ScalingEvent) {
        time_ms = event.time
        action = "\(event.action)"
        kind = "\(event.kind)"
        tier = "\(event.tier)"
        count = event.count
        servers = event.servers
        utilisation = event.utilisation
        reason = event.reason
    }
}

/// The `pocket status --json` document.
struct StatusJSON: Encodable {
    struct Server: Encodable {
        var id: UInt32
        var kind: String
        var tier: String
        var address: String
        var state: String
        var used_bytes: UInt64
        var capacity_bytes: UInt64
        var throughput_bytes_per_s: UInt64
        var allocated_bytes: UInt64
        var allocated_bytes_per_s: UInt64
        var block_count: UInt64
        var cpu: Double
        var bytes_in_per_s: UInt64
        var bytes_out_per_s: UInt64
        var requests_per_s: UInt64
    }

    struct Job: Encodable {
        var name: String
        var id: UInt64
        var tier: String
        var throughput_bytes_per_s: UInt64
        var capacity_bytes: UInt64
        var used_bytes: UInt64
        var nodes: Double
        var cost_per_hour: Double
        var overcommitted: Bool
        /// Server id (as a string) → fraction of the job's data.
        var weightmap: [String: Double]
        var metadata: String
    }

    var block_size: UInt32
    var servers: [Server]
    var jobs: [Job]

    init(_ status: ClusterStatus) {
        block_size = status.blockSize
        servers = status.servers.map {
            Server(
                id: $0.id, kind: "\($0.kind)", tier: "\($0.tier)", address: $0.address, state: "\($0.state)",
                used_bytes: $0.stats.usedBytes, capacity_bytes: $0.stats.capacityBytes,
                throughput_bytes_per_s: $0.throughput, allocated_bytes: $0.allocatedCapacity,
                allocated_bytes_per_s: $0.allocatedThroughput, block_count: $0.stats.blockCount,
                cpu: $0.stats.cpu, bytes_in_per_s: $0.stats.bytesInPerSecond,
                bytes_out_per_s: $0.stats.bytesOutPerSecond, requests_per_s: $0.stats.requestsPerSecond)
        }
        jobs = status.jobs.map { job in
            Job(
                name: job.name, id: job.id, tier: "\(job.allocation.tier)",
                throughput_bytes_per_s: job.allocation.throughput, capacity_bytes: job.allocation.capacity,
                used_bytes: job.usedBytes, nodes: job.allocation.nodes, cost_per_hour: job.allocation.costPerHour,
                overcommitted: job.allocation.overcommitted,
                weightmap: Dictionary(uniqueKeysWithValues: job.weightMap.entries.map { ("\($0.server)", $0.weight) }),
                metadata: job.metadataAddress)
        }
    }
}
