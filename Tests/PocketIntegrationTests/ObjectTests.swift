import Foundation
import NIOCore
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import Testing

@Suite(.serialized) struct ObjectTests {
    @Test func objectsOfEverySizeReadBackIdentical() async throws {
        try await withCluster { _, client in
            let job = try await client.registerJob("sizes")
            let sizes = [0, 1, 65535, 65536, 65537, 10 << 20, 200 << 20]
            for (index, size) in sizes.enumerated() {
                let data = pattern(size, seed: UInt64(index))
                try await job.put("objects/\(size)", data)
                let back = try await job.get("objects/\(size)")
                #expect(back.readableBytes == size)
                #expect(back == data, "object of \(size) bytes came back different")
                #expect(try await job.stat("objects/\(size)").size == UInt64(size))
            }
            try await client.deregisterJob(job)
        }
    }

    @Test func blocksLandOnServersInProportionToTheWeightMap() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("spread")
            let status = try await client.status()
            let map = try #require(status.jobs.first { $0.name == "spread" }).weightMap
            #expect(map.entries.count == 2)
            for index in 0..<5 { try await job.put("o\(index)", pattern(10 << 20 + 123, seed: UInt64(index))) }
            let blocksPerObject = (10 << 20 + 123 + 65535) / 65536
            let total = 5 * blocksPerObject
            for server in cluster.storageServers {
                let stats = try await ask(server.endpoint, StorageStats())
                let entry = try #require(
                    status.servers.first { $0.address == server.endpoint.description }.flatMap { info in
                        map.entries.first { $0.server == info.id }
                    })
                let expected = Double(total) * entry.weight
                #expect(
                    abs(Double(stats.blockCount) - expected) <= 5,
                    "server \(server.endpoint): \(stats.blockCount) of \(total)")
            }
            try await client.deregisterJob(job)
        }
    }

    @Test func deregistrationReturnsEveryServerToZero() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("ephemeral")
            for index in 0..<4 { try await job.put("dir/o\(index)", pattern(3 << 20, seed: UInt64(index))) }
            try await job.put("small", pattern(100, seed: 9))
            // An upload that never committed: its blocks must go too.
            try await ignoringCancellation {
                try await job.write("abandoned") { writer in
                    try await writer.write(pattern(2 << 20, seed: 1))
                    throw CancellationError()
                }
            }
            var used: UInt64 = 0
            for server in cluster.storageServers { used += try await ask(server.endpoint, StorageStats()).usedBytes }
            #expect(used >= 12 << 20)
            try await client.deregisterJob(job)
            for server in cluster.storageServers {
                let stats = try await ask(server.endpoint, StorageStats())
                #expect(stats.usedBytes == 0, "\(server.endpoint) still holds \(stats.usedBytes) bytes")
                #expect(stats.blockCount == 0)
            }
        }
    }

    @Test func oneJobsTokenCannotReachAnotherJobsObjects() async throws {
        try await withCluster { _, client in
            let alice = try await client.registerJob("alice")
            let bob = try await client.registerJob("bob")
            try await alice.put("secret", pattern(100_000, seed: 1))
            try await alice.put("tiny", pattern(10, seed: 2))

            // Bob's token with Alice's job id.
            let metadata = alice.metadata
            for path in ["secret", "tiny"] {
                await #expect {
                    try await ask(metadata, GetObject(auth: JobAuth(job: alice.id, token: bob.token), path: path))
                } throws: { errorCode($0) == .unauthorized }
            }
            await #expect {
                try await ask(metadata, Delete(auth: JobAuth(job: alice.id, token: bob.token), path: "secret"))
            } throws: { errorCode($0) == .unauthorized }
            // Bob's own namespace does not contain Alice's objects.
            await #expect { try await bob.get("secret") } throws: { errorCode($0) == .notFound }
            // Neither the controller nor lookup accept a wrong token.
            await #expect { try await client.openJob("alice", token: bob.token) } throws: {
                errorCode($0) == .unauthorized
            }
            await #expect { try await client.deregisterJob("alice", token: "0000") } throws: {
                errorCode($0) == .unauthorized
            }
            #expect(try await alice.get("secret") == pattern(100_000, seed: 1))
            try await client.deregisterJob(alice)
            try await client.deregisterJob(bob)
        }
    }

    @Test func fullCapacityGivesNoSpaceAndLosesNothing() async throws {
        try await withCluster(capacity: 4 << 20) { _, client in
            let job = try await client.registerJob("full")
            var stored: [Int] = []
            var failure: (any Error)?
            for index in 0..<20 {
                do {
                    try await job.put("o\(index)", pattern(1 << 20, seed: UInt64(index)))
                    stored.append(index)
                } catch {
                    failure = error
                    break
                }
            }
            #expect(errorCode(try #require(failure)) == .noSpace)
            #expect(stored.count == 8, "two servers of 4 MiB hold eight 1 MiB objects")
            for index in stored {
                #expect(try await job.get("o\(index)") == pattern(1 << 20, seed: UInt64(index)))
            }
            // Space freed by a delete is usable at once.
            try await job.delete("o0")
            try await job.put("again", pattern(1 << 20, seed: 99))
            #expect(try await job.get("again") == pattern(1 << 20, seed: 99))
            try await client.deregisterJob(job)
        }
    }

    @Test func streamedObjectsArriveInOrder() async throws {
        try await withCluster { _, client in
            let job = try await client.registerJob("stream")
            let data = pattern(5 << 20 + 777, seed: 5)
            try await job.write("big") { writer in
                var offset = 0
                var step = 1
                while offset < data.readableBytes {
                    let length = min(step, data.readableBytes - offset)
                    try await writer.write(data.getSlice(at: offset, length: length)!)
                    offset += length
                    step = step * 3 % 200_003 + 1
                }
            }
            var back = ByteBuffer()
            var chunks = 0
            try await job.read("big") { chunk in
                var chunk = chunk
                back.writeBuffer(&chunk)
                chunks += 1
            }
            #expect(back == data)
            #expect(chunks > 1)

            try await job.write("small") { try await $0.write(Array("hello".utf8)) }
            #expect(try await job.get("small") == ByteBuffer(string: "hello"))
            try await client.deregisterJob(job)
        }
    }

    @Test func filesGoInAndComeOutWhole() async throws {
        try await withCluster { _, client in
            let job = try await client.registerJob("files")
            let directory = try temporaryDirectory("files")
            defer { try? FileManager.default.removeItem(at: directory) }
            for size in [0, 100, 3 << 20 + 17] {
                let source = directory.appendingPathComponent("in-\(size)")
                let copy = directory.appendingPathComponent("out-\(size)")
                try Data(pattern(size, seed: UInt64(size)).readableBytesView).write(to: source)
                try await job.put("f/\(size)", contentsOfFile: source.path)
                try await job.get("f/\(size)", toFile: copy.path)
                #expect(try Data(contentsOf: copy) == Data(contentsOf: source), "\(size) bytes")
            }
            await #expect { try await job.put("x", contentsOfFile: directory.path + "/missing") } throws: {
                errorCode($0) == .io
            }
            try await client.deregisterJob(job)
        }
    }

    @Test func namespaceOperationsWork() async throws {
        try await withCluster { _, client in
            let job = try await client.registerJob("names")
            try await job.makeDirectory("a/b", parents: true)
            try await job.put("a/b/one", pattern(70_000, seed: 1))
            try await job.put("a/two", pattern(10, seed: 2))
            #expect(try await job.list("a").map(\.name) == ["b", "two"])
            #expect(try await job.list("a", prefix: "t").map(\.name) == ["two"])
            try await job.rename("a/b/one", to: "a/three")
            #expect(try await job.get("a/three") == pattern(70_000, seed: 1))
            await #expect { try await job.get("a/b/one") } throws: { errorCode($0) == .notFound }
            await #expect { try await job.delete("a") } throws: { errorCode($0) == .notEmpty }
            try await job.delete("a", recursive: true)
            #expect(try await job.list("/").isEmpty)
            try await client.deregisterJob(job)
        }
    }

    @Test func lifetimeRulesPersistAndDeleteAfterRead() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("life")
            try await job.put("kept", pattern(100_000, seed: 1), persist: true)
            try await job.put("kept-small", pattern(10, seed: 2), persist: true)
            try await job.put("gone", pattern(100_000, seed: 3))
            try await job.put("once", pattern(100_000, seed: 4))
            try await job.put("once-small", pattern(10, seed: 5))
            #expect(try await job.get("once", deleteAfterRead: true) == pattern(100_000, seed: 4))
            #expect(try await job.get("once-small", deleteAfterRead: true) == pattern(10, seed: 5))
            await #expect { try await job.stat("once") } throws: { errorCode($0) == .notFound }
            await #expect { try await job.stat("once-small") } throws: { errorCode($0) == .notFound }
            try await client.deregisterJob(job)

            var used: UInt64 = 0
            for server in cluster.storageServers { used += try await ask(server.endpoint, StorageStats()).usedBytes }
            #expect(used == 100_000, "only the persisted object's bytes remain")

            let again = try await client.registerJob("life")
            #expect(try await again.get("kept") == pattern(100_000, seed: 1))
            #expect(try await again.get("kept-small") == pattern(10, seed: 2))
            await #expect { try await again.get("gone") } throws: { errorCode($0) == .notFound }
            try await again.delete("kept")
            try await client.deregisterJob(again)
        }
    }

    @Test func manyConcurrentSmallOperationsShareConnections() async throws {
        try await withCluster { _, client in
            let job = try await client.registerJob("concurrent")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let data = pattern(1000 + index, seed: UInt64(index))
                        try await job.put("k\(index)", data)
                        #expect(try await job.get("k\(index)") == data)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await job.list("/").count == 500)
            try await client.deregisterJob(job)
        }
    }

    @Test func registeringALiveNameTwiceIsAClearError() async throws {
        try await withCluster { _, client in
            let job = try await client.registerJob("twice")
            await #expect { try await client.registerJob("twice") } throws: { errorCode($0) == .alreadyExists }
            await #expect { try await client.registerJob("bad/name") } throws: { errorCode($0) == .invalidArgument }
            await #expect { try await client.registerJob("x", hints: JobHints(maxLambdas: 0)) } throws: {
                errorCode($0) == .invalidArgument
            }
            try await client.deregisterJob(job)
            await #expect { try await job.get("anything") } throws: { errorCode($0) == .unknownJob }
        }
    }
}

func ignoringCancellation(_ body: () async throws -> Void) async throws {
    do { try await body() } catch is CancellationError {}
}
