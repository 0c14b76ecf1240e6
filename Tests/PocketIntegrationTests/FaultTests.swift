import Foundation
import NIOCore
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import PocketTestSupport
import Testing

@Suite(.serialized) struct FaultTests {
    /// Sends raw bytes to a port and returns whatever comes back before the peer closes or
    /// `patience` seconds pass without a byte (an answer that must come gets a long patience: a
    /// hang guard, not a bound).
    func sendRaw(_ bytes: [UInt8], to endpoint: Endpoint, patience: Int = 1) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PocketError(.io, "socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(endpoint.port).bigEndian)
        inet_pton(AF_INET, endpoint.host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw PocketError(.io, "connect to \(endpoint)") }
        var timeout = timeval(tv_sec: patience, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            reply += chunk[0..<count]
        }
        return reply
    }

    func header(length: UInt32, version: UInt8 = 1, opcode: UInt8, requestID: UInt64 = 1) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(length)
        buffer.writeInteger(version)
        buffer.writeInteger(opcode)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(requestID)
        return Array(buffer.readableBytesView)
    }

    @Test func everyServerSurvivesGarbageOnItsPort() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("survivor")
            try await job.put("before", pattern(300_000, seed: 1))
            var generator = SystemRandomNumberGenerator()
            for server in cluster.processes {
                // Random bytes, a header announcing a frame far over the limit, a bad version,
                // and a frame cut short before the peer hangs up.
                for _ in 0..<5 {
                    let noise = (0..<Int.random(in: 1...20_000, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    }
                    _ = try sendRaw(noise, to: server.endpoint)
                }
                let oversized = try sendRaw(
                    header(length: 1 << 30, opcode: 0x50, requestID: 7), to: server.endpoint, patience: 60)
                var reply = ByteBuffer(bytes: oversized)
                var decoder = FrameDecoder()
                guard case .frame(let frame) = decoder.decode(buffer: &reply) else {
                    Issue.record("\(server.role) did not answer an oversized frame")
                    continue
                }
                #expect(frame.error?.code == .frameTooLarge)
                #expect(frame.header.requestID == 7)
                _ = try sendRaw(header(length: 12, version: 7, opcode: 1), to: server.endpoint)
                _ = try sendRaw(header(length: 5000, opcode: 0x50) + [1, 2, 3], to: server.endpoint)

                // On a healthy connection: unknown opcodes and malformed payloads get error replies,
                // and the connection keeps working.
                let connection = try await RPCConnection.connect(to: server.endpoint)
                let unknown = try await connection.send(
                    [ByteBuffer(bytes: header(length: 12, opcode: 0xEE))], timeout: .seconds(5))
                #expect(unknown.error?.code == .unknownOpcode, "\(server.role)")
                let malformed = try await connection.send(
                    [ByteBuffer(bytes: header(length: 15, opcode: Opcode.putInline.rawValue) + [9, 9, 9])],
                    timeout: .seconds(5))
                #expect(malformed.error != nil, "\(server.role) accepted a malformed payload")
                _ = try await connection.call(Ping())
                await connection.close()
            }
            #expect(try await job.get("before") == pattern(300_000, seed: 1))
            try await job.put("after", pattern(300_000, seed: 2))
            #expect(try await job.get("after") == pattern(300_000, seed: 2))
            try await client.deregisterJob(job)
        }
    }

    @Test func theDataPathKeepsWorkingWithoutTheController() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("orphan")
            try await job.put("before", pattern(3 << 20, seed: 1))
            cluster.controller.signal(SIGKILL)
            await cluster.controller.waitUntilExit()
            // Clients talk to metadata and storage servers directly: puts, gets, lists and deletes
            // go on while the controller is gone.
            for index in 0..<5 {
                try await job.put("during/\(index)", pattern(1 << 20 + index, seed: UInt64(index)))
                try await job.put("small/\(index)", pattern(100, seed: UInt64(index)))
            }
            #expect(try await job.get("before") == pattern(3 << 20, seed: 1))
            for index in 0..<5 {
                #expect(try await job.get("during/\(index)") == pattern(1 << 20 + index, seed: UInt64(index)))
            }
            #expect(try await job.list("during/").count == 5)
            try await job.delete("before")
            // Asking the controller itself fails clearly rather than hanging.
            await #expect { try await client.status() } throws: { errorCode($0) == .unavailable }
        }
    }

    @Test func aRestartedControllerRebuildsItsStateFromTheServers() async throws {
        try await withCluster { cluster, client in
            let home = try temporaryDirectory("restart")
            defer { try? FileManager.default.removeItem(at: home) }
            let job = try await client.registerJob("phoenix", hints: JobHints(peakThroughput: 500_000_000))
            try await job.put("before", pattern(3 << 20, seed: 1))
            try await job.put("small", pattern(100, seed: 2))
            // An ended job whose persisted (inline) object outlives it: the name keeps its id.
            let kept = try await client.registerJob("kept")
            try await kept.put("saved", pattern(100, seed: 3), persist: true)
            try await client.deregisterJob(kept)
            let before = try await client.status()
            let ids = Dictionary(uniqueKeysWithValues: before.servers.map { ($0.address, $0.id) })
            let original = try #require(before.jobs.first { $0.name == "phoenix" })

            cluster.controller.signal(SIGKILL)
            await cluster.controller.waitUntilExit()
            try await job.put("during", pattern(1 << 20, seed: 4))
            #expect(try await job.get("before") == pattern(3 << 20, seed: 1))

            // A new controller on the same address: the servers register again under their ids,
            // the metadata server reports the job.
            let restarted = ContinuousClock.now
            try await cluster.restartController()
            let listening = ContinuousClock.now - restarted
            var serversBack: Duration?
            var jobBack: Duration?
            try await eventually("the servers back under their ids and the job listed", every: .milliseconds(20)) {
                let status = try await client.status()
                let active = status.servers.filter { $0.state == .active }
                if serversBack == nil, Dictionary(uniqueKeysWithValues: active.map { ($0.address, $0.id) }) == ids {
                    serversBack = ContinuousClock.now - restarted
                }
                if jobBack == nil, status.jobs.contains(where: { $0.name == "phoenix" && $0.id == original.id }) {
                    jobBack = ContinuousClock.now - restarted
                }
                return serversBack != nil && jobBack != nil
            }
            let servers = try #require(serversBack)
            let jobs = try #require(jobBack)

            let listed = try #require(try await client.listJobs().first { $0.name == "phoenix" })
            #expect(listed.id == original.id)
            #expect(listed.weightMap == original.weightMap)
            #expect(listed.allocation == original.allocation)
            #expect(listed.metadataAddress == original.metadataAddress)

            // `pocket status` shows the storage servers under the ids they had.
            let status = try await pocket(
                ["status", "--json"], controller: cluster.controller.endpoint.description, home: home)
            #expect(status.status == 0, "\(status.errors)")
            let shown = try storageServerIDs(statusJSON: status.output)
            #expect(shown.count == 2)
            #expect(shown == ids.filter { shown[$0.key] != nil })

            // Objects written before and while the controller was away read back; new ones go in.
            #expect(try await job.get("before") == pattern(3 << 20, seed: 1))
            #expect(try await job.get("small") == pattern(100, seed: 2))
            #expect(try await job.get("during") == pattern(1 << 20, seed: 4))
            try await job.put("after", pattern(2 << 20, seed: 5))
            #expect(try await job.get("after") == pattern(2 << 20, seed: 5))

            // The job's token still proves it; deregistering frees its blocks on every storage server.
            #expect(try await client.openJob("phoenix", token: job.token).id == original.id)
            let answered = ContinuousClock.now - restarted
            let held = try await storageBlocks(cluster)
            #expect(held > 0)
            try await client.deregisterJob(job)
            #expect(try await storageBlocks(cluster) == 0)
            #expect(try await client.listJobs().allSatisfy { $0.name != "phoenix" })

            // New jobs register; the ended job's name still leads to its persisted object.
            let newcomer = try await client.registerJob("newcomer")
            #expect(newcomer.id != original.id)
            try await newcomer.put("x", pattern(1 << 20, seed: 6))
            #expect(try await newcomer.get("x") == pattern(1 << 20, seed: 6))
            let again = try await client.registerJob("kept")
            #expect(again.id == kept.id)
            #expect(try await again.get("saved") == pattern(100, seed: 3))
            try await client.deregisterJob(newcomer)
            try await client.deregisterJob(again)
            // The metadata server's report carried the tokens; no log shows them.
            #expect(logsShowing([job.token, kept.token], in: cluster).isEmpty)
            print(
                "controller restart: listening after \(listening), servers back under their ids after \(servers), "
                    + "job listed after \(jobs), first job call answered after \(answered) (\(held) blocks freed)")
        }
    }

    /// Address → id of the storage servers in `pocket status --json` output.
    func storageServerIDs(statusJSON: String) throws -> [String: ServerID] {
        let document = try JSONSerialization.jsonObject(with: Data(statusJSON.utf8)) as? [String: Any]
        var ids: [String: ServerID] = [:]
        for server in document?["servers"] as? [[String: Any]] ?? [] where server["kind"] as? String == "storage" {
            if let address = server["address"] as? String, let id = server["id"] as? NSNumber {
                ids[address] = id.uint32Value
            }
        }
        return ids
    }

    /// The processes whose logs show any of `secrets`.
    func logsShowing(_ secrets: [String], in cluster: LocalCluster) -> [String] {
        cluster.processes.filter { process in
            let log = process.log
            return secrets.contains { log.contains($0) }
        }.map(\.role)
    }

    /// Blocks held by the cluster's storage servers, by their own count.
    func storageBlocks(_ cluster: LocalCluster) async throws -> UInt64 {
        var total: UInt64 = 0
        for server in cluster.storageServers { total += try await ask(server.endpoint, StorageStats()).blockCount }
        return total
    }

    @Test func aDeadMetadataServersJobsGetAClearErrorNotAHang() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("headless")
            try await job.put("object", pattern(2 << 20, seed: 1))
            let metadata = cluster.metadataServers[0]
            metadata.signal(SIGKILL)
            await metadata.waitUntilExit()
            await #expect { try await job.get("object") } throws: { errorCode($0) == .unavailable }
            await #expect { try await job.put("new", pattern(100, seed: 2)) } throws: { errorCode($0) == .unavailable }
            // The controller still answers, and marks the server dead.
            try await eventually("the controller to mark the killed metadata server dead") {
                try await client.status().servers.contains {
                    $0.address == metadata.endpoint.description && $0.state == .dead
                }
            }
        }
    }

    @Test func aRestartedMetadataServersJobsGetAClearError() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("forgotten")
            try await job.put("object", pattern(2 << 20, seed: 1))
            let old = cluster.metadataServers[0]
            func metadataID() async throws -> ServerID? {
                try await client.status().servers.first {
                    $0.kind == .metadata && $0.address == old.endpoint.description
                }?.id
            }
            let oldID = try await metadataID()
            old.signal(SIGKILL)
            await old.waitUntilExit()
            // A new process on the same address: it knows nothing of the job (namespaces live in a
            // metadata server's memory), and says so rather than hanging or answering wrongly —
            // `unavailable` until it has registered, then `unknown job`.
            try await cluster.addMetadataServer(listen: old.endpoint)
            try await eventually("the new metadata server to register under a new id") {
                let id = try await metadataID()
                return id != nil && id != oldID
            }
            await #expect { try await job.get("object") } throws: { errorCode($0) == .unknownJob }
            await #expect { try await job.put("new", pattern(100, seed: 2)) } throws: { errorCode($0) == .unknownJob }
            await #expect { try await job.list() } throws: { errorCode($0) == .unknownJob }
            // The cluster goes on: a new job is placed and works.
            let fresh = try await client.registerJob("fresh")
            try await fresh.put("object", pattern(2 << 20, seed: 3))
            #expect(try await fresh.get("object") == pattern(2 << 20, seed: 3))
        }
    }

    @Test func readsFromAKilledStorageServerFailClearly() async throws {
        try await withCluster { cluster, client in
            let job = try await client.registerJob("victim")
            try await job.put("striped", pattern(4 << 20, seed: 1))
            try await job.put("inline", pattern(100, seed: 2))
            let victim = cluster.storageServers[0]
            victim.signal(SIGKILL)
            await victim.waitUntilExit()

            await #expect { try await job.get("striped") } throws: { errorCode($0) == .io }
            #expect(try await job.get("inline") == pattern(100, seed: 2), "objects off the dead server still read")

            // The controller marks it dead, and once the metadata server has its table, new writes
            // avoid it (until then a put may still pick it and fail).
            try await eventually("the controller to mark the killed storage server dead") {
                try await client.status().servers.contains {
                    $0.address == victim.endpoint.description && $0.state == .dead
                }
            }
            try await eventually("a put to succeed once the killed server is known dead") {
                try await job.put("later", pattern(4 << 20, seed: 3))
                return true
            }
            #expect(try await job.get("later") == pattern(4 << 20, seed: 3))
            try await client.deregisterJob(job)
        }
    }

    @Test func aFrozenStorageServerTimesOutInsteadOfHanging() async throws {
        var configuration = PocketClient.Configuration()
        configuration.timeout = .seconds(2)
        try await withCluster(clientConfiguration: configuration) { cluster, client in
            let job = try await client.registerJob("frozen")
            try await job.put("striped", pattern(4 << 20, seed: 1))
            let victim = cluster.storageServers[1]
            victim.signal(SIGSTOP)
            let result = await capture { try await job.get("striped") }
            victim.signal(SIGCONT)
            guard case .failure(let error) = result else {
                Issue.record("a read from a stopped server succeeded")
                return
            }
            #expect(errorCode(error) == .io)
            try await client.deregisterJob(job)
        }
    }
}
