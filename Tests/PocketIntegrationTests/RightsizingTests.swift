import Foundation
import PocketClient
import PocketLocal
import PocketProtocol
import Testing

/// Rightsizing with real processes: hints choose the tier, data lands only where the weight map
/// says (checked with the storage servers' own block counters), new hints move new blocks, and
/// the controller starts servers when a job needs more than the cluster has.
@Suite struct RightsizingTests {
    /// Block counts per tier, from each storage server's own counters.
    func blocksPerTier(_ cluster: LocalCluster, _ client: PocketClient) async throws -> [Tier: UInt64] {
        let status = try await client.status()
        var counts: [Tier: UInt64] = [:]
        for server in cluster.storageServers {
            let tier = try #require(status.servers.first { $0.address == server.endpoint.description }).tier
            counts[tier, default: 0] += try await ask(server.endpoint, StorageStats()).blockCount
        }
        return counts
    }

    @Test func hintsChooseTheTierAndNewHintsMoveNewBlocks() async throws {
        try await withCluster(storageServers: 0) { cluster, client in
            for tier in Tier.allCases { try await cluster.addStorageServer(tier: tier) }
            try await cluster.waitUntilRegistered()
            let blocks = 5  // 64 KiB blocks per 320 KiB object

            // Latency-sensitive: DRAM only.
            let fast = try await client.registerJob(
                "fast", hints: JobHints(latencySensitive: true, peakThroughput: 50_000_000, capacity: 64 << 20))
            for index in 0..<4 { try await fast.put("o\(index)", pattern(blocks << 16, seed: UInt64(index))) }
            #expect(try await blocksPerTier(cluster, client) == [.dram: 20, .ssd: 0, .hdd: 0])

            // Capacity-heavy, throughput-light (more than ~1,550 GB per Gb/s): HDD is cheapest.
            let cold = try await client.registerJob(
                "cold", hints: JobHints(latencySensitive: false, peakThroughput: 10_000, capacity: 512 << 20))
            for index in 0..<4 { try await cold.put("o\(index)", pattern(blocks << 16, seed: UInt64(10 + index))) }
            #expect(try await blocksPerTier(cluster, client) == [.dram: 20, .ssd: 0, .hdd: 20])

            // Throughput-heavy, not latency-sensitive: SSD (HDD would need 2.5 of its nodes' throughput).
            let busy = try await client.registerJob(
                "busy", hints: JobHints(peakThroughput: 500_000_000, capacity: 256 << 20))
            for index in 0..<4 { try await busy.put("o\(index)", pattern(blocks << 16, seed: UInt64(20 + index))) }
            #expect(try await blocksPerTier(cluster, client) == [.dram: 20, .ssd: 20, .hdd: 20])

            var status = try await client.status()
            let tiers = Dictionary(uniqueKeysWithValues: status.jobs.map { ($0.name, $0.allocation.tier) })
            #expect(tiers == ["fast": .dram, "cold": .hdd, "busy": .ssd])
            for job in status.jobs {
                #expect(!job.allocation.overcommitted)
                #expect(job.allocation.costPerHour > 0)
            }
            // Each server's reservation is what its one job asked for.
            let allocated = Dictionary(
                uniqueKeysWithValues: status.servers.filter { $0.kind == .storage }.map {
                    ($0.tier, $0.allocatedCapacity)
                })
            #expect(allocated == [.dram: 64 << 20, .hdd: 512 << 20, .ssd: 256 << 20])

            // The cold job turns latency-sensitive: new blocks go to DRAM, old ones stay on HDD.
            let info = try await client.updateHints(
                "cold", token: cold.token,
                hints: JobHints(latencySensitive: true, peakThroughput: 10_000, capacity: 512 << 20))
            #expect(info.allocation.tier == .dram)
            try await cold.put("after", pattern(blocks << 16, seed: 99))
            #expect(try await blocksPerTier(cluster, client) == [.dram: 25, .ssd: 20, .hdd: 20])
            for index in 0..<4 {
                #expect(try await cold.get("o\(index)") == pattern(blocks << 16, seed: UInt64(10 + index)))
            }
            #expect(try await cold.get("after") == pattern(blocks << 16, seed: 99))
            status = try await client.status()
            let moved = Dictionary(
                uniqueKeysWithValues: status.servers.filter { $0.kind == .storage }.map {
                    ($0.tier, $0.allocatedCapacity)
                })
            #expect(moved == [.dram: (64 + 512) << 20, .hdd: 0, .ssd: 256 << 20])

            for job in [fast, cold, busy] { try await client.deregisterJob(job) }
            status = try await client.status()
            for server in status.servers where server.kind == .storage {
                #expect(server.allocatedCapacity == 0 && server.allocatedThroughput == 0)
            }
            #expect(try await blocksPerTier(cluster, client) == [.dram: 0, .ssd: 0, .hdd: 0])
        }
    }

    @Test func theControllerStartsServersOnlyWhenAJobNeedsThem() async throws {
        try await withCluster(
            storageServers: 1, capacity: 256 << 20,
            configure: { options in
                options.provision = [.dram: 256 << 20]
                options.provisionLimits = 1...3
            }
        ) { cluster, client in
            func storageCount() async throws -> Int {
                try await client.status().servers.filter { $0.kind == .storage && $0.state == .active }.count
            }
            // 400 MiB does not fit one 256 MiB server: the controller starts one more first.
            let big = try await client.registerJob(
                "big", hints: JobHints(latencySensitive: true, peakThroughput: 100_000_000, capacity: 400 << 20))
            #expect(try await storageCount() == 2)
            var status = try await client.status()
            let job = try #require(status.jobs.first { $0.name == "big" })
            #expect(job.weightMap.entries.count == 2)
            #expect(!job.allocation.overcommitted)
            for index in 0..<6 { try await big.put("o\(index)", pattern(50 << 20, seed: UInt64(index))) }
            status = try await client.status()
            for server in status.servers where server.kind == .storage {
                #expect(server.allocatedCapacity <= server.stats.capacityBytes)
            }
            // A small job fits what is left: nothing new starts.
            let small = try await client.registerJob(
                "small", hints: JobHints(latencySensitive: true, peakThroughput: 10_000_000, capacity: 50 << 20))
            #expect(try await storageCount() == 2)
            // Beyond the limit of three servers: no launch, the job is over-committed instead.
            let huge = try await client.registerJob(
                "huge", hints: JobHints(latencySensitive: true, peakThroughput: 10_000_000, capacity: 4 << 30))
            #expect(try await storageCount() == 3)
            #expect(try await client.status().jobs.first { $0.name == "huge" }?.allocation.overcommitted == true)
            for index in 0..<6 { #expect(try await big.get("o\(index)") == pattern(50 << 20, seed: UInt64(index))) }
            for job in [big, small, huge] { try await client.deregisterJob(job) }
        }
    }
}
