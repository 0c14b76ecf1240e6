import Foundation
import NIOCore
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import PocketTestSupport
import Testing

/// Jobs with the replication hint keep every object through the loss of storage servers: reads
/// fall back to a copy at once, and the lost copies are made again on the servers left.
@Suite struct ReplicationTests {
    let sizes = [100, 70_000, 1 << 20, 3 << 20 + 17]

    func putAll(_ job: PocketJob, prefix: String) async throws {
        for (index, size) in sizes.enumerated() {
            try await job.put("\(prefix)/\(index)", pattern(size, seed: UInt64(index + 1)))
        }
    }

    func checkAll(_ job: PocketJob, prefix: String) async throws {
        for (index, size) in sizes.enumerated() {
            #expect(
                try await job.get("\(prefix)/\(index)") == pattern(size, seed: UInt64(index + 1)), "\(prefix)/\(index)")
        }
    }

    /// Waits until every block of the job's objects has `copies` copies, none on `lost`.
    func waitForCopies(
        _ job: PocketJob, prefix: String, copies: Int, avoiding lost: Set<ServerID>
    ) async throws -> Duration {
        let started = ContinuousClock.now
        try await eventually(
            "every block of \(prefix)/ to have \(copies) copies, none on \(lost)", every: .milliseconds(200)
        ) {
            var healthy = true
            for index in sizes.indices {
                let layout = try await job.layout("\(prefix)/\(index)")
                healthy =
                    healthy
                    && layout.blocks.allSatisfy { Set($0.servers).count == copies && lost.isDisjoint(with: $0.servers) }
            }
            return healthy
        }
        return ContinuousClock.now - started
    }

    func serverID(of process: LocalProcess, in client: PocketClient) async throws -> ServerID {
        try await client.status().servers.first { $0.address == process.endpoint.description }!.id
    }

    @Test func killedServersLoseNoReplicatedObject() async throws {
        try await withCluster(storageServers: 4) { cluster, client in
            let job = try await client.registerJob("kept", hints: JobHints(replication: 2))
            let plain = try await client.registerJob("plain")
            try await putAll(job, prefix: "a")
            try await plain.put("striped", pattern(4 << 20, seed: 9))
            for index in sizes.indices where sizes[index] > job.inlineLimit {
                let layout = try await job.layout("a/\(index)")
                #expect(layout.blocks.allSatisfy { Set($0.servers).count == 2 }, "two copies of each block")
            }

            // One server killed: every replicated object reads back at once, from the other copy.
            let first = cluster.storageServers[0]
            let firstID = try await serverID(of: first, in: client)
            first.signal(SIGKILL)
            await first.waitUntilExit()
            try await checkAll(job, prefix: "a")
            // The unreplicated job's striped object had blocks there: a clear error, not a hang.
            await #expect { try await plain.get("striped") } throws: { errorCode($0) == .io }

            // Once the controller calls it dead, the metadata server makes the lost copies again.
            let restored = try await waitForCopies(job, prefix: "a", copies: 2, avoiding: [firstID])
            print("copies restored \(restored) after the kill was seen")
            try await putAll(job, prefix: "b")

            // So a second loss loses nothing either.
            let second = cluster.storageServers[1]
            let secondID = try await serverID(of: second, in: client)
            second.signal(SIGKILL)
            await second.waitUntilExit()
            try await checkAll(job, prefix: "a")
            try await checkAll(job, prefix: "b")
            _ = try await waitForCopies(job, prefix: "a", copies: 2, avoiding: [firstID, secondID])
            try await client.deregisterJob(job)
        }
    }

    @Test func aFrozenServerIsReadAround() async throws {
        // A short request timeout, so reading around the frozen server takes seconds, not tens of
        // them; how long it takes is measured by scripts/faults.
        var configuration = PocketClient.Configuration()
        configuration.timeout = .seconds(4)
        try await withCluster(storageServers: 3, clientConfiguration: configuration) { cluster, client in
            let job = try await client.registerJob("patient", hints: JobHints(replication: 3))
            try await putAll(job, prefix: "a")
            let victim = cluster.storageServers[2]
            victim.signal(SIGSTOP)
            defer { victim.signal(SIGCONT) }
            try await checkAll(job, prefix: "a")
            victim.signal(SIGCONT)
        }
    }

    @Test func badReplicationHintsAreRefused() async throws {
        try await withCluster(storageServers: 2) { cluster, client in
            await #expect { try await client.registerJob("greedy", hints: JobHints(replication: 4)) } throws: {
                errorCode($0) == .invalidArgument
            }
            await #expect { try await client.registerJob("none", hints: JobHints(replication: 0)) } throws: {
                errorCode($0) == .invalidArgument
            }
            // Three copies on two servers cannot be placed: a clear error at the first write.
            let job = try await client.registerJob("crowded", hints: JobHints(replication: 3))
            await #expect { try await job.put("big", pattern(200_000, seed: 1)) } throws: { errorCode($0) == .noSpace }
            try await job.put("small", pattern(100, seed: 1))
        }
    }
}
