import Foundation
import NIOCore
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import PocketSecurity
import PocketTestSupport
import Testing

/// Isolation between jobs, down to the storage servers: block operations need a capability a
/// metadata server signed, and only the controller's signed requests change a job's assignment.
@Suite struct SecurityTests {
    /// The storage server holding the first block of `key`, and that block's id.
    func firstBlock(of key: String, in job: PocketJob, cluster: LocalCluster) async throws -> (Endpoint, BlockID) {
        let layout = try await job.layout(key)
        let table = try await ask(job.metadata, GetServers())
        let address = table.servers.first { $0.id == layout.blocks[0].server }!.address
        return (try Endpoint(parsing: address), layout.blocks[0].id)
    }

    @Test func anotherJobsBlocksCannotBeReadWrittenOrFreed() async throws {
        try await withCluster { cluster, client in
            let owner = try await client.registerJob("owner")
            let intruder = try await client.registerJob("intruder")
            try await owner.put("secret", pattern(300_000, seed: 1))
            try await intruder.put("mine", pattern(300_000, seed: 2))
            let (server, block) = try await firstBlock(of: "secret", in: owner, cluster: cluster)
            // The intruder's genuine capability covers its own job only.
            let own = try #require(try await intruder.layout("mine").capability)
            let read = ReadBlocks(jobID: owner.id, capabilities: [own], ranges: [BlockRange(id: block)])
            await #expect { try await ask(server, read) } throws: { errorCode($0) == .unauthorized }
            // Relabelled as the owner's, the signature no longer holds; so with a wider range.
            var relabelled = own
            relabelled.job = owner.id
            await #expect {
                try await ask(
                    server, ReadBlocks(jobID: owner.id, capabilities: [relabelled], ranges: [BlockRange(id: block)]))
            } throws: { errorCode($0) == .unauthorized }
            var widened = own
            widened.blocks = 0...BlockID.max
            widened.rights = [.read, .write, .free]
            await #expect {
                try await ask(
                    server, ReadBlocks(jobID: intruder.id, capabilities: [widened], ranges: [BlockRange(id: 1)]))
            } throws: { errorCode($0) == .unauthorized }
            // No capability at all: guessing ids gets nothing, overwriting and freeing nothing.
            await #expect {
                try await ask(server, ReadBlocks(jobID: owner.id, capabilities: [], ranges: [BlockRange(id: block)]))
            } throws: { errorCode($0) == .unauthorized }
            let garbage = WriteBlocks(
                jobID: owner.id, capabilities: [relabelled], blocks: [.init(id: block, data: pattern(65536, seed: 9))])
            await #expect { try await ask(server, garbage) } throws: { errorCode($0) == .unauthorized }
            await #expect {
                try await ask(server, FreeBlocks(jobID: owner.id, capability: relabelled, ids: [block]))
            } throws: { errorCode($0) == .unauthorized }
            await #expect {
                try await ask(server, FreeJob(jobID: owner.id, capability: relabelled))
            } throws: { errorCode($0) == .unauthorized }
            // A read capability does not let its own job write either.
            await #expect {
                try await ask(
                    server,
                    WriteBlocks(
                        jobID: intruder.id, capabilities: [own], blocks: [.init(id: 1, data: pattern(10, seed: 3))]))
            } throws: { errorCode($0) == .unauthorized }
            #expect(try await owner.get("secret") == pattern(300_000, seed: 1), "the owner's data is untouched")
            #expect(try await intruder.get("mine") == pattern(300_000, seed: 2))
        }
    }

    @Test func capabilitiesSignedWithTheClusterKeyAreHonouredUntilTheyExpire() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("timed")
            try await job.put("object", pattern(200_000, seed: 4))
            let (server, block) = try await firstBlock(of: "object", in: job, cluster: cluster)
            let key = try ClusterKey.load(path: cluster.options.environment["POCKET_CLUSTER_KEY"]!)
            let signer = CapabilitySigner(key: key)
            let fresh = signer.sign(job: job.id, rights: .read, blocks: block...block)
            let data = try await ask(
                server, ReadBlocks(jobID: job.id, capabilities: [fresh], ranges: [BlockRange(id: block)]))
            #expect(data.blocks.count == 1, "a capability signed with the cluster's key is accepted")
            let expired = signer.sign(job: job.id, rights: .read, blocks: block...block, lifetime: .seconds(-5))
            await #expect {
                try await ask(
                    server, ReadBlocks(jobID: job.id, capabilities: [expired], ranges: [BlockRange(id: block)]))
            } throws: { ($0 as? PocketError)?.message.contains("expired") == true }
            let stranger = CapabilitySigner(key: .random()).sign(job: job.id, rights: .read, blocks: block...block)
            await #expect {
                try await ask(
                    server, ReadBlocks(jobID: job.id, capabilities: [stranger], ranges: [BlockRange(id: block)]))
            } throws: { errorCode($0) == .unauthorized }
        }
    }

    @Test func onlyTheControllerCanAssignOrDropJobs() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("guarded")
            try await job.put("object", pattern(100_000, seed: 5))
            let forger = CapabilitySigner(key: .random())
            let hijack = AssignJob(
                capability: forger.control(job: job.id), jobID: job.id, name: job.name, token: "mine now",
                hints: JobHints(), weightMap: .even([1]))
            await #expect { try await ask(job.metadata, hijack) } throws: { errorCode($0) == .unauthorized }
            await #expect {
                try await ask(job.metadata, DropJob(capability: forger.control(job: job.id), jobID: job.id))
            } throws: { errorCode($0) == .unauthorized }
            await #expect {
                try await ask(job.metadata, ServerTable(servers: []))
            } throws: { errorCode($0) == .unauthorized }
            // A client cannot ask a metadata server for free or control rights either.
            await #expect {
                try await ask(
                    job.metadata,
                    AuthorizeBlocks(auth: JobAuth(job: job.id, token: job.token), rights: .free, blocks: 1...1))
            } throws: { errorCode($0) == .unauthorized }
            await #expect {
                try await ask(
                    job.metadata,
                    AuthorizeBlocks(auth: JobAuth(job: job.id, token: "guess"), rights: .read, blocks: 1...1))
            } throws: { errorCode($0) == .unauthorized }
            #expect(try await job.get("object") == pattern(100_000, seed: 5), "the job is still its owner's")
            try await client.deregisterJob(job)
        }
    }

    @Test func onlyHoldersOfTheClusterKeyJoinTheCluster() async throws {
        try await withCluster { cluster, client in
            let before = try await client.status().servers.map(\.id)
            let rogue = RegisterServer(
                kind: .storage, tier: .dram, address: "127.0.0.1:9", capacityBytes: 1 << 40, throughput: 1)
            await #expect { try await ask(cluster.controller.endpoint, rogue) } throws: {
                errorCode($0) == .unauthorized
            }
            var forged = rogue
            forged.proof = CapabilitySigner(key: .random()).control()
            await #expect { try await ask(cluster.controller.endpoint, forged) } throws: {
                errorCode($0) == .unauthorized
            }
            // Nor can a stranger keep a server alive or feed the autoscaler reports.
            await #expect {
                try await ask(cluster.controller.endpoint, Heartbeat(serverID: before[0], stats: ServerStats()))
            } throws: { errorCode($0) == .unauthorized }
            #expect(try await client.status().servers.map(\.id) == before, "no server joined")
            // With the cluster's key, the same registration is taken.
            let key = try ClusterKey.load(path: cluster.options.environment["POCKET_CLUSTER_KEY"]!)
            var member = rogue
            member.proof = CapabilitySigner(key: key).control()
            let reply = try await ask(cluster.controller.endpoint, member)
            #expect(!before.contains(reply.serverID))
        }
    }

    @Test func tokensAndTheClusterKeyNeverReachTheLogs() async throws {
        try await withCluster(configure: { $0.logLevel = "trace" }) { cluster, client in
            let job = try await client.registerJob("quiet")
            try await job.put("object", pattern(200_000, seed: 6))
            _ = try await job.get("object")
            try await client.deregisterJob(job)
            // The frees that follow a deregistration reach the storage servers (and their logs).
            try await eventually("every storage server to have freed the job's blocks") {
                for server in cluster.storageServers where try await ask(server.endpoint, StorageStats()).usedBytes != 0
                {
                    return false
                }
                return true
            }
            let key = try String(contentsOfFile: cluster.options.environment["POCKET_CLUSTER_KEY"]!, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(key.count == 64)
            for process in cluster.processes {
                let log = process.log
                #expect(!log.isEmpty, "\(process.role) logged nothing at trace level")
                #expect(!log.contains(job.token), "\(process.role) logged a job token")
                #expect(!log.contains(key), "\(process.role) logged the cluster key")
            }
        }
    }
}
