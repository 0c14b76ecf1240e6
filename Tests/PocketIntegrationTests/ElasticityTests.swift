import Foundation
import NIOCore
import PocketClient
import PocketLocal
import PocketProtocol
import PocketTestSupport
import Synchronization
import Testing

/// Indices of the objects written so far, shared by the writer tasks.
final class Written: Sendable {
    let indices = Mutex<[Int]>([])
}

/// Autoscaling with real processes: load above one storage server's declared throughput makes the
/// controller start another, which receives blocks; when the load and the data go, servers drain and
/// stop down to the minimum; no object is lost on the way. (How fast — P6 — is measured by
/// scripts/elasticity, not asserted here.)
@Suite struct ElasticityTests {
    static let throughput: UInt64 = 20_000_000  // declared by every storage server: easy to exceed

    func storage(_ client: PocketClient) async throws -> [ServerInfo] {
        try await client.status().servers.filter { $0.kind == .storage }
    }

    @Test func loadStartsAServerAndItsDrainingStopsIt() async throws {
        try await withCluster(
            storageServers: 1,
            configure: { options in
                options.storageThroughput = Self.throughput
                options.provision = [.dram: 1 << 30]
                options.provisionLimits = 1...2
                options.autoscale = true
                options.controllerArguments = [
                    "--server-throughput", "\(Self.throughput)B/s", "--scale-down-after", "2", "--scale-cooldown", "1",
                ]
            }
        ) { cluster, client in
            let job = try await client.registerJob(
                "elastic", hints: JobHints(latencySensitive: true, peakThroughput: 5_000_000, capacity: 256 << 20))
            let first = try #require(try await storage(client).first)

            // Writers well above 16 MB/s (80% of the declared 20 MB/s) until a second server has blocks.
            let written = Written()
            let loadStart = ContinuousClock.now
            let loadStartDate = Date()
            let (newServer, seen): (ServerInfo, Date) = try await withThrowingTaskGroup(
                of: (ServerInfo, Date)?.self
            ) { group in
                for writer in 0..<4 {
                    group.addTask {
                        // 96 objects of 1 MiB, written over and over (the same bytes each time).
                        var index = writer
                        while !Task.isCancelled {
                            try await job.put("o\(index)", pattern(1 << 20, seed: UInt64(index)))
                            written.indices.withLock { if !$0.contains(index) { $0.append(index) } }
                            index = (index + 4) % 96
                        }
                        return nil
                    }
                }
                group.addTask {
                    // Typed, so that "not yet" (nil) cannot be taken for the group's nil result.
                    let found: (ServerInfo, Date) = try await eventually(
                        "a second storage server to receive blocks", every: .milliseconds(20)
                    ) {
                        guard let second = try await storage(client).first(where: { $0.id != first.id }) else {
                            return nil
                        }
                        let stats = try await ask(try .init(parsing: second.address), StorageStats())
                        return stats.blockCount > 0 ? (second, Date()) : nil
                    }
                    return found
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw PocketError(.timedOut, "no second storage server received blocks")
            }
            let firstBlock = loadStart + .milliseconds(Int64(seen.timeIntervalSince(loadStartDate) * 1000))
            let launchEvents = try await client.call(ListEvents()).events
            let launch = try #require(launchEvents.first { $0.action == .launch && $0.kind == .storage })
            let decided = Date(timeIntervalSince1970: Double(launch.time) / 1000)
            let sinceDecision = seen.timeIntervalSince(decided)
            print(
                "P6: load start → first block on the new server \(firstBlock - loadStart); "
                    + "scale-up decision → first block ≈ \(Int(sinceDecision * 1000)) ms; \(launch.reason)")
            #expect(newServer.tier == .dram)

            // Every object written so far reads back, from whichever server holds it.
            let objects = written.indices.withLock { $0 }
            #expect(objects.count > 10)
            for index in objects { #expect(try await job.get("o\(index)") == pattern(1 << 20, seed: UInt64(index))) }

            // Load gone: after 2 s below 60% the newer server drains; its blocks stay readable.
            try await eventually("the new server to drain once the load is gone", every: .milliseconds(100)) {
                try await storage(client).first(where: { $0.id == newServer.id })?.state == .draining
            }
            // A few reads (4 MiB, far below the scale-up threshold; reading everything again would
            // be load enough to take it back).
            for index in objects.prefix(4) {
                #expect(try await job.get("o\(index)") == pattern(1 << 20, seed: UInt64(index)))
            }
            // New blocks avoid the draining server.
            let before = try await ask(try .init(parsing: newServer.address), StorageStats()).blockCount
            #expect(before > 0)
            try await job.put("after-drain", pattern(1 << 20, seed: 77))
            // (Blocks of uploads cancelled with the writers may still be leaving it, so "no more".)
            if try await storage(client).first(where: { $0.id == newServer.id })?.state == .draining {
                #expect(try await ask(try .init(parsing: newServer.address), StorageStats()).blockCount <= before)
            }

            // The data goes: the drained server holds nothing and is stopped, back to the minimum.
            try await client.deregisterJob(job)
            let freed = ContinuousClock.now
            try await eventually("the drained server to be released", every: .milliseconds(20)) {
                !(try await storage(client).contains(where: { $0.id == newServer.id }))
            }
            let released = ContinuousClock.now - freed
            print("drained server released \(released) after its last block was freed")
            #expect(try await storage(client).map(\.id) == [first.id])
            let events = try await client.call(ListEvents()).events
            let history = events.map { "\($0.action) → \($0.servers): \($0.reason)" }
            print("scaling events: \(history)")
            #expect(events.first?.action == .launch && events.last?.action == .release, "\(history)")
            _ = cluster
        }
    }
}

/// Metadata servers as a pool of their own: the controller starts them up to the minimum, gives
/// each new job to the least-loaded one, and tells clients which one owns their job.
@Suite struct MetadataScalingTests {
    @Test func theControllerStartsMetadataServersAndSpreadsJobsOverThem() async throws {
        try await withCluster(
            storageServers: 1,
            configure: { options in
                options.controllerArguments = ["--provision-metadata", "--min-metadata-servers", "2", "--autoscale"]
            }
        ) { _, client in
            let metadata = try await eventually("two active metadata servers") {
                let active = try await client.status().servers.filter { $0.kind == .metadata && $0.state == .active }
                return active.count >= 2 ? active : nil
            }
            let events = try await client.call(ListEvents()).events
            #expect(events.first?.action == .launch && events.first?.kind == .metadata)
            #expect(events.first?.reason.contains("minimum") == true)
            // Four jobs: two on each metadata server, and each works through the one it was given.
            var jobs: [PocketJob] = []
            for index in 0..<4 {
                let job = try await client.registerJob("m\(index)")
                try await job.put("object", pattern(200_000, seed: UInt64(index)))
                jobs.append(job)
            }
            let owners = try await client.listJobs().map(\.metadataAddress)
            #expect(Set(owners) == Set(metadata.map(\.address)))
            for address in Set(owners) { #expect(owners.filter { $0 == address }.count == 2) }
            for (index, job) in jobs.enumerated() {
                #expect(try await job.get("object") == pattern(200_000, seed: UInt64(index)))
                try await client.deregisterJob(job)
            }
        }
    }
}
