import Foundation
import NIOCore
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import PocketTestSupport
import Testing

/// Clusters of real `pocket` processes serving only TLS, with a throwaway CA made by `openssl`:
/// every hop (client → controller, metadata, storage; servers → controller; metadata → storage;
/// controller → metadata and the servers it starts) verifies certificates; plain and wrongly
/// trusting clients get clear refusals.
@Suite(.serialized) struct TLSTests {
    struct Material {
        var certificates: TestCertificates
        var authority: TestCertificates.Authority
        var files: TransportSecurity.Files
        /// Trusts the cluster's CA.
        var client: PocketClient.Configuration
    }

    func withMaterial<T>(_ body: (Material) async throws -> T) async throws -> T {
        try await TestCertificates.withTemporaryDirectory { certificates in
            let authority = try certificates.authority("ca")
            let server = try certificates.server("server", signedBy: authority)
            let files = TransportSecurity.Files(
                certificate: server.certificate, key: server.key, trustRoots: authority.certificate)
            var client = PocketClient.Configuration()
            client.security = try TransportSecurity(.init(trustRoots: authority.certificate))
            return try await body(
                Material(certificates: certificates, authority: authority, files: files, client: client))
        }
    }

    @Test func aTLSClusterStoresListsAndDeletesObjects() async throws {
        try await withMaterial { material in
            try await withCluster(clientConfiguration: material.client, configure: { $0.tls = material.files }) {
                cluster, client in
                let job = try await client.registerJob("secure")
                // Inline (one metadata round trip), one block, many blocks over both storage servers.
                let sizes = [100, 65_536, 3 << 20 + 17]
                for (index, size) in sizes.enumerated() {
                    try await job.put("data/o\(index)", pattern(size, seed: UInt64(index)))
                }
                for (index, size) in sizes.enumerated() {
                    #expect(try await job.get("data/o\(index)") == pattern(size, seed: UInt64(index)))
                }
                #expect(try await job.list("data/").map(\.name) == ["o0", "o1", "o2"])
                try await job.delete("data/o2")
                await #expect(throws: PocketError.self) { _ = try await job.get("data/o2") }
                #expect(try await job.list("data/").map(\.name) == ["o0", "o1"])
                let status = try await client.status()
                #expect(status.servers.filter { $0.state == .active }.count == 3)
                try await client.deregisterJob(job)
            }
        }
    }

    @Test func plainAndWronglyTrustingClientsAreRefusedClearly() async throws {
        try await withMaterial { material in
            try await withCluster(
                storageServers: 1, clientConfiguration: material.client, configure: { $0.tls = material.files }
            ) { cluster, client in
                let job = try await client.registerJob("guarded")
                try await job.put("x", pattern(200_000, seed: 3))

                // A plain client, to the controller and straight to a storage server.
                let plain = PocketClient(controller: cluster.controller.endpoint, configuration: .init())
                let refused = await capture { try await plain.status() }
                await plain.close()
                #expect(throws: PocketError.self) { try refused.get() }
                if case .failure(let error as PocketError) = refused {
                    #expect(error.code == .unauthorized)
                    #expect(error.message.contains("accepts only TLS connections"), "\(error)")
                }
                let storage = try #require(cluster.storageServers.first).endpoint
                let direct = await capture {
                    let connection = try await RPCConnection.connect(to: storage, security: .plain)
                    let result = await capture { try await connection.call(StorageStats()) }
                    await connection.close()
                    return try result.get()
                }
                #expect(throws: PocketError.self) { try direct.get() }

                // A TLS client trusting another CA.
                let stranger = try material.certificates.authority("stranger")
                var strangers = PocketClient.Configuration()
                strangers.security = try TransportSecurity(.init(trustRoots: stranger.certificate))
                let wrong = PocketClient(controller: cluster.controller.endpoint, configuration: strangers)
                let distrusted = await capture { try await wrong.status() }
                await wrong.close()
                #expect(throws: PocketError.self) { try distrusted.get() }
                if case .failure(let error as PocketError) = distrusted {
                    #expect(error.message.contains("not signed by a CA this client trusts"), "\(error)")
                }

                // The cluster is unharmed.
                #expect(try await job.get("x") == pattern(200_000, seed: 3))
                try await client.deregisterJob(job)
            }
        }
    }

    @Test func theControllerStartsTLSServersThroughItsProvisioner() async throws {
        try await withMaterial { material in
            try await withCluster(
                storageServers: 1, capacity: 256 << 20, clientConfiguration: material.client,
                configure: { options in
                    options.tls = material.files
                    options.provision = [.dram: 256 << 20]
                    options.provisionLimits = 1...2
                }
            ) { cluster, client in
                // 400 MiB does not fit one 256 MiB server: the controller starts one more, which must
                // register over TLS before the job is placed across both.
                let job = try await client.registerJob(
                    "grow", hints: JobHints(latencySensitive: true, peakThroughput: 100_000_000, capacity: 400 << 20))
                let status = try await client.status()
                #expect(status.servers.filter { $0.kind == .storage && $0.state == .active }.count == 2)
                #expect(status.jobs.first { $0.name == "grow" }?.weightMap.entries.count == 2)
                for index in 0..<4 { try await job.put("o\(index)", pattern(2 << 20, seed: UInt64(index))) }
                for index in 0..<4 { #expect(try await job.get("o\(index)") == pattern(2 << 20, seed: UInt64(index))) }
                try await client.deregisterJob(job)
            }
        }
    }

    @Test func theMountSpeaksTLS() async throws {
        try await withMaterial { material in
            let home = material.certificates.directory.appendingPathComponent("home")
            let point = material.certificates.directory.appendingPathComponent("mnt")
            try FileManager.default.createDirectory(at: point, withIntermediateDirectories: true)
            try await withCluster(
                clientConfiguration: material.client,
                configure: { options in
                    options.tls = material.files
                    options.environment = ["POCKET_HOME": home.path]
                }
            ) { cluster, client in
                try await cluster.mount(at: point.path)
                let job = point.appendingPathComponent("fused")
                try FileManager.default.createDirectory(at: job, withIntermediateDirectories: false)
                let data = Data(pattern(300_000, seed: 9).readableBytesView)
                try data.write(to: job.appendingPathComponent("file"))
                #expect(try Data(contentsOf: job.appendingPathComponent("file")) == data)
                #expect(try await client.listJobs().map(\.name) == ["fused"])
                try FileManager.default.removeItem(at: job)
                #expect(try await client.listJobs().isEmpty)
            }
            #expect(!isMounted(point.path))
        }
    }

    @Test func pocketUpAndTheCommandLineSpeakTLS() async throws {
        try await withMaterial { material in
            try await withClusterSlot { try await pocketUpSpeaksTLS(material) }
        }
    }

    func pocketUpSpeaksTLS(_ material: Material) async throws {
        let home = material.certificates.directory.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let up = try Command.start(
            [
                "up", "--no-mount", "--listen", "127.0.0.1:0", "--storage-servers", "1", "--capacity", "256MiB",
                "--data-dir", home.appendingPathComponent("cluster").path,
                "--tls-cert", material.files.certificate!, "--tls-key", material.files.key!,
                "--tls-ca", material.files.trustRoots!,
            ], home: home)
        let outcome = await capture { try await commandLineSpeaksTLS(up, material: material, home: home) }
        await up.stop()
        try outcome.get()
    }

    func commandLineSpeaksTLS(_ up: Command, material: Material, home: URL) async throws {
        let line = try await up.waitForOutput(containing: "Pocket is up")
        let controller = try #require(line.split(separator: " ").dropFirst(4).first.map { String($0.dropLast()) })

        let trusting = ["POCKET_CONTROLLER": controller, "POCKET_TLS_CA": material.files.trustRoots!]
        func run(_ arguments: String..., environment: [String: String] = trusting) async throws -> Command.Result {
            try await Command.run(arguments, home: home, environment: environment)
        }
        var result = try await run("job", "register", "cli")
        #expect(result.status == 0, "\(result.errors)")
        let source = home.appendingPathComponent("input")
        try Data(pattern(1 << 20 + 3, seed: 5).readableBytesView).write(to: source)
        result = try await run("put", "cli", "big", source.path)
        #expect(result.status == 0, "\(result.errors)")
        result = try await run("put", "cli", "small", material.files.trustRoots!)
        #expect(result.status == 0, "\(result.errors)")
        let copy = home.appendingPathComponent("copy")
        result = try await run("get", "cli", "big", copy.path)
        #expect(result.status == 0, "\(result.errors)")
        #expect(try Data(contentsOf: copy) == Data(contentsOf: source))
        result = try await run("ls", "cli")
        #expect(result.output == "big\nsmall\n")
        result = try await run("rm", "cli", "small")
        #expect(result.status == 0, "\(result.errors)")
        result = try await run("bench", "--count", "20", "--size", "100KiB", "--json")
        #expect(result.status == 0, "\(result.errors)")
        // The flag works as the variable does.
        result = try await run(
            "status", "--json", "--tls-ca", material.files.trustRoots!,
            environment: ["POCKET_CONTROLLER": controller])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("\"storage\""))

        // Without the CA: refused, saying why.
        result = try await run("status", environment: ["POCKET_CONTROLLER": controller])
        #expect(result.status != 0)
        #expect(result.errors.contains("accepts only TLS connections"), "\(result.errors)")
        result = try await run("job", "deregister", "cli")
        #expect(result.status == 0, "\(result.errors)")

        await up.stop()
        #expect(try await up.waitForOutput(containing: "Pocket stopped").contains("stopped"))
    }

    @Test func aDaemonWithBadTLSSettingsStopsWithAClearError() async throws {
        try await withMaterial { material in
            let home = material.certificates.directory.appendingPathComponent("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let missing = material.certificates.directory.appendingPathComponent("missing.pem").path
            var result = try await Command.run(
                [
                    "storage", "--controller", "127.0.0.1:1", "--tls-cert", missing, "--tls-key",
                    material.files.key!, "--tls-ca", material.files.trustRoots!,
                ], home: home)
            #expect(result.status != 0)
            #expect(
                result.errors.contains("TLS file \(missing) cannot be read: No such file or directory"),
                "\(result.errors)")

            result = try await Command.run(
                ["metadata", "--controller", "127.0.0.1:1", "--tls-cert", material.files.certificate!], home: home)
            #expect(result.status != 0)
            #expect(result.errors.contains("got only --tls-cert"), "\(result.errors)")

            // From the environment too.
            result = try await Command.run(
                ["controller", "--listen", "127.0.0.1:0"], home: home,
                environment: [
                    "POCKET_TLS_CERT": material.files.certificate!, "POCKET_TLS_KEY": material.files.certificate!,
                    "POCKET_TLS_CA": material.files.trustRoots!,
                ])
            #expect(result.status != 0)
            #expect(result.errors.contains("holds no unencrypted PEM private key"), "\(result.errors)")
        }
    }
}

/// A `pocket` process with its own home and environment, its output in files under `home`.
struct Command: Sendable {
    struct Result {
        var status: Int32
        var output: String
        var errors: String
    }

    let process: ProcessBox
    let output: URL

    /// `Process` is not Sendable; it is only signalled and polled here.
    final class ProcessBox: @unchecked Sendable {
        let process: Process
        init(_ process: Process) { self.process = process }
    }

    /// The caller's environment without the settings a test must give explicitly, and with `home`.
    static func environment(home: URL, _ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["POCKET_CONTROLLER", "POCKET_TLS_CA", "POCKET_TLS_CERT", "POCKET_TLS_KEY", "POCKET_TOKEN"] {
            environment[key] = nil
        }
        environment["POCKET_HOME"] = home.path
        environment["POCKET_PARENT_PID"] = String(getpid())
        environment.merge(extra) { $1 }
        return environment
    }

    /// Starts a long-running `pocket` command (`pocket up`); `stop` ends it.
    static func start(_ arguments: [String], home: URL, environment extra: [String: String] = [:]) throws -> Command {
        let process = Process()
        process.executableURL = try pocketExecutable()
        process.arguments = arguments
        process.environment = environment(home: home, extra)
        let name = UUID().uuidString
        let output = home.appendingPathComponent("\(name).out")
        let errors = home.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Command(process: ProcessBox(process), output: output)
    }

    /// Runs a `pocket` command to completion.
    static func run(_ arguments: [String], home: URL, environment extra: [String: String] = [:]) async throws -> Result
    {
        let result = try await runCommand(
            try pocketExecutable(), arguments, environment: environment(home: home, extra))
        return Result(status: result.status, output: result.output, errors: result.errors)
    }

    /// The first line of standard output containing `text`, once there is one.
    func waitForOutput(containing text: String) async throws -> String {
        let errors = output.deletingPathExtension().appendingPathExtension("err")
        return try await eventually(
            "'\(text)' from pocket; stderr: \((try? String(contentsOf: errors, encoding: .utf8)) ?? "")"
        ) {
            let lines = ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
            return lines.first(where: { $0.contains(text) }).map(String.init)
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 seconds (a hang guard).
    func stop() async {
        let process = self.process.process
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if (try? await eventually("pocket to exit after SIGTERM", deadline: .seconds(30)) { !process.isRunning }) == nil
        {
            kill(process.processIdentifier, SIGKILL)
            try? await eventually("pocket to exit after SIGKILL") { !process.isRunning }
        }
    }
}
