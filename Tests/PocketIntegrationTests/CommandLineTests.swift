import Foundation
import PocketLocal
import PocketProtocol
import Testing

/// The `pocket` command as a user runs it, against a real cluster.
@Suite(.serialized) struct CommandLineTests {
    @Test func aUserCanRegisterStoreListFetchAndDeregister() async throws {
        try await withCluster { cluster, _ in
            let home = try temporaryDirectory("cli")
            defer { try? FileManager.default.removeItem(at: home) }
            let controller = cluster.controller.endpoint.description
            func run(_ arguments: String..., input: URL? = nil) async throws -> PocketRun {
                try await pocket(arguments, controller: controller, home: home, input: input)
            }

            var result = try await run("job", "register", "cli", "--lambdas", "10", "--capacity", "2GiB")
            #expect(result.status == 0, "\(result.errors)")
            let tokenFile = home.appendingPathComponent("tokens/127.0.0.1_\(cluster.controller.endpoint.port)/cli")
            let mode = try FileManager.default.attributesOfItem(atPath: tokenFile.path)[.posixPermissions] as? Int
            #expect(mode == 0o600)

            let source = home.appendingPathComponent("input")
            try Data(pattern(3 << 20 + 5, seed: 1).readableBytesView).write(to: source)
            result = try await run("put", "cli", "data/part-0", source.path)
            #expect(result.status == 0, "\(result.errors)")
            result = try await run("put", "cli", "data/note", input: source)  // from standard input
            #expect(result.status == 0, "\(result.errors)")
            let copy = home.appendingPathComponent("copy")
            result = try await run("get", "cli", "data/part-0", copy.path)
            #expect(result.status == 0, "\(result.errors)")
            #expect(try Data(contentsOf: copy) == Data(contentsOf: source))

            result = try await run("ls", "cli", "data/")
            #expect(result.output == "data/note\ndata/part-0\n")
            result = try await run("ls", "cli", "data/p")
            #expect(result.output == "data/part-0\n")
            result = try await run("rm", "cli", "data/note")
            #expect(result.status == 0)
            result = try await run("get", "cli", "data/note", home.appendingPathComponent("x").path)
            #expect(result.status != 0)
            #expect(result.errors.contains("not found"))

            result = try await run("job", "list")
            #expect(result.output.contains("cli"))
            result = try await run("job", "show", "cli")
            #expect(result.output.contains("max_lambdas=10"))
            #expect(result.output.contains("capacity=2 GiB"))
            #expect(result.output.contains("weight map"))
            // Ten lambdas and 2 GiB would be cheapest on SSD; this cluster has DRAM only, and
            // exactly 2 GiB of it.
            #expect(result.output.contains("allocation: dram, 715.26 MiB/s, 2 GiB"), "\(result.output)")
            #expect(result.output.contains("cost: $"))
            #expect(result.output.contains("(dram 127.0.0.1:"))

            result = try await run("status", "--json")
            let status = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
            let servers = try #require(status?["servers"] as? [[String: Any]])
            #expect(servers.count == 3)
            for server in servers {
                for key in [
                    "kind", "tier", "address", "state", "used_bytes", "capacity_bytes", "allocated_bytes",
                    "allocated_bytes_per_s", "throughput_bytes_per_s",
                ] {
                    #expect(server[key] != nil, "server field \(key)")
                }
            }
            let jobs = try #require(status?["jobs"] as? [[String: Any]])
            #expect(jobs.first?["name"] as? String == "cli")
            #expect((jobs.first?["weightmap"] as? [String: Double])?.values.reduce(0, +) ?? 0 > 0.999)
            #expect(jobs.first?["tier"] as? String == "dram")
            #expect((jobs.first?["cost_per_hour"] as? Double ?? 0) > 0)
            #expect(jobs.first?["overcommitted"] as? Bool == false)
            let allocated = servers.compactMap { $0["allocated_bytes"] as? Int }.reduce(0, +)
            #expect(allocated == 2 << 30)

            result = try await run("status")
            #expect(result.output.contains("storage"))

            result = try await run("job", "deregister", "cli")
            #expect(result.status == 0, "\(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: tokenFile.path))
            result = try await run("job", "deregister", "cli")
            #expect(result.status != 0)
        }
    }

    @Test func thePolicyIsShownAndBadPolicyFilesAreRefused() async throws {
        let home = try temporaryDirectory("policy")
        defer { try? FileManager.default.removeItem(at: home) }
        var result = try await pocket(["controller", "--show-policy"], controller: "127.0.0.1:1", home: home)
        #expect(result.status == 0, "\(result.errors)")
        let policy = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        #expect(policy?["per_lambda_throughput"] as? String == "600Mb/s")
        #expect((policy?["tiers"] as? [String: Any])?.keys.sorted() == ["dram", "hdd", "ssd"])
        let file = home.appendingPathComponent("policy.json")
        try Data(#"{"tiers": {"ssd": {"node_capacity": "4TB"}}}"#.utf8).write(to: file)
        result = try await pocket(
            ["controller", "--show-policy", "--policy", file.path], controller: "127.0.0.1:1", home: home)
        #expect(result.output.contains(#""node_capacity": "4TB""#))
        try Data(#"{"tiers": {"ssd": {"node_capacity": "lots"}}}"#.utf8).write(to: file)
        result = try await pocket(["controller", "--policy", file.path], controller: "127.0.0.1:1", home: home)
        #expect(result.status != 0)
        #expect(result.errors.contains("ssd.node_capacity"))
    }

    @Test func aShortSoakRunsCleanAndLeavesNothingBehind() async throws {
        try await withCluster { cluster, client in
            let home = try temporaryDirectory("soak")
            defer { try? FileManager.default.removeItem(at: home) }
            let result = try await pocket(
                ["soak", "--clients", "50", "--duration", "3", "--json"],
                controller: cluster.controller.endpoint.description,
                home: home)
            #expect(result.status == 0, "\(result.output) \(result.errors)")
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
            #expect(report["errors"] as? Int == 0)
            #expect((report["operations"] as? Int ?? 0) > 100)
            #expect(try await client.listJobs().isEmpty)
            for server in cluster.storageServers {
                #expect(try await ask(server.endpoint, StorageStats()).usedBytes == 0, "\(server.role)")
            }
        }
    }

    @Test func benchReportsJSONAndCleansUp() async throws {
        try await withCluster { cluster, client in
            let home = try temporaryDirectory("bench")
            defer { try? FileManager.default.removeItem(at: home) }
            for op in ["put", "get"] {
                let result = try await pocket(
                    ["bench", "--op", op, "--size", "70KiB", "--count", "200", "--concurrency", "4", "--json"],
                    controller: cluster.controller.endpoint.description, home: home)
                #expect(result.status == 0, "\(result.errors)")
                let report = try #require(
                    try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
                #expect(report["op"] as? String == op)
                #expect(report["size"] as? Int == 70 * 1024)
                #expect(report["count"] as? Int == 200)
                #expect(report["concurrency"] as? Int == 4)
                for key in ["ops_per_s", "bytes_per_s", "p50_us", "p99_us", "max_us"] {
                    #expect((report[key] as? Double ?? 0) > 0, "\(key)")
                }
            }
            #expect(try await client.listJobs().isEmpty, "bench removes its job")
        }
    }

    @Test func badArgumentsGetClearErrors() async throws {
        let home = try temporaryDirectory("args")
        defer { try? FileManager.default.removeItem(at: home) }
        let result = try await pocket(
            ["job", "register", "x", "--capacity", "lots"], controller: "127.0.0.1:1", home: home)
        #expect(result.status != 0)
        #expect(result.errors.contains("capacity"))
        let unreachable = try await pocket(["job", "list"], controller: "127.0.0.1:1", home: home)
        #expect(unreachable.status != 0)
        #expect(unreachable.errors.contains("cannot connect"))
    }
}
