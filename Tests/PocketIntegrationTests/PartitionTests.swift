import Foundation
import PocketLocal
import PocketProtocol
import PocketRPC
import PocketTestSupport
import Synchronization
import Testing

/// Network partitions: a storage server cut off from the rest of the cluster by the network, not
/// killed. The cluster lives in namespaces (`NamespaceNetwork`) and is driven through the `pocket`
/// command, as a user inside the cluster's network would.
@Suite(.serialized) struct PartitionTests {
    static let permitted = NamespaceNetwork.permitted

    @Test(
        .enabled("`ip netns add` is not permitted here (needs root or CAP_SYS_ADMIN); partition tests skipped") {
            PartitionTests.permitted
        })
    func aPartitionedStorageServerIsDeclaredDeadFailsReadsFastAndReturnsWithItsData() async throws {
        try await withSplitCluster { cluster in
            // A job whose weight map is the core's storage server alone: it exists before "far" does.
            try await cluster.succeed("job", "register", "near", "--throughput", "100MB/s", "--capacity", "64MiB")
            let nearData = try cluster.file("near-data", size: 1 << 20, seed: 1)
            try await cluster.succeed("put", "near", "data", nearData.path)

            let far = try await cluster.startStorage(on: "far")
            let status = try await cluster.status()
            let farID = try #require(status.server(far.endpoint)?.id)
            let coreID = try #require(status.server(cluster.coreStorage.endpoint)?.id)
            #expect(status.job("near")?.weightmap == ["\(coreID)": 1])

            // A job over both storage servers.
            try await cluster.succeed("job", "register", "both")
            let map = try #require(try await cluster.status().job("both")?.weightmap)
            #expect((map["\(farID)"] ?? 0) > 0.2 && (map["\(coreID)"] ?? 0) > 0.2, "weight map \(map)")
            // Single-block objects, and how many of them are on "far" by far's own count of its blocks
            // (the core holds "near"'s 16). Which server each lands on is the placer's business (a
            // put reserves no more blocks than it uses, so they alternate); the reads below are
            // checked against that count.
            let singles = try (0..<6).map { try cluster.file("one-\($0)", size: 20_000 + $0, seed: 10 + UInt64($0)) }
            for (index, file) in singles.enumerated() {
                try await cluster.succeed("put", "both", "one/\(index)", file.path)
            }
            let farSingles = try await cluster.blockCounts(totalling: 16 + singles.count)[farID] ?? 0
            print("partition: far holds \(farSingles) of \(singles.count) single-block objects")
            let striped = try cluster.file("striped", size: 4 << 20, seed: 2)
            try await cluster.succeed("put", "both", "striped", striped.path)
            let inline = try cluster.file("inline", size: 100, seed: 3)
            try await cluster.succeed("put", "both", "inline", inline.path)
            // A job with two copies of each block: one on each side of the cut.
            try await cluster.succeed("job", "register", "kept", "--replication", "2")
            try await cluster.succeed("put", "kept", "striped", striped.path)

            // 1. Before: everything reads back.
            try await cluster.expectContents("both", "striped", striped)
            try await cluster.expectContents("both", "inline", inline)
            for (index, file) in singles.enumerated() { try await cluster.expectContents("both", "one/\(index)", file) }
            try await cluster.expectContents("near", "data", nearData)
            let farBlocksBeforeCut =
                try await cluster.blockCounts(totalling: 16 + singles.count + 64 + 2 * 64)[farID] ?? 0

            // 2. During the partition. How long each step takes is `scripts/faults`'s to measure;
            // here, what happens: errors that are clear and come (the commands' deadline is a
            // hang guard), and no data lost.
            let cut = ContinuousClock.now
            try cluster.network.partition("far")
            // A put issued before the controller notices still places blocks on "far": with one
            // copy per block it may fail, but clearly and without hanging.
            let earlyFile = try cluster.file("early", size: 4 << 20, seed: 4)
            async let early = cluster.pocket(["put", "both", "early", earlyFile.path])
            let timeToDead = try await cluster.waitFor(far, state: "dead")
            let earlyPut = try await early
            print("partition: far marked dead after \(timeToDead); a put in that window: \(earlyPut.summary)")
            #expect(earlyPut.status == 0 || earlyPut.errors.contains("I/O error"), "\(earlyPut.errors)")

            // Reads of blocks on "far" fail with an I/O error naming the server; the others read.
            let reads = try await withThrowingTaskGroup(of: (String, NamespacedRun).self) { group in
                for key in ["striped", "inline"] + singles.indices.map({ "one/\($0)" }) {
                    group.addTask { (key, try await cluster.pocket(["get", "both", key, cluster.output(key).path])) }
                }
                return try await group.reduce(into: [String: NamespacedRun]()) { $0[$1.0] = $1.1 }
            }
            var failedSingles = 0
            for (key, run) in reads.sorted(by: { $0.key < $1.key }) {
                print("partition: get \(key): \(run.summary)")
                if run.status != 0 {
                    #expect(
                        run.errors.contains("I/O error") && run.errors.contains("storage server \(farID)"),
                        "\(run.errors)")
                    if key.hasPrefix("one/") { failedSingles += 1 }
                }
            }
            #expect(reads["striped"]?.status != 0, "a striped object read with half its blocks cut off")
            // Two copies: nothing is lost, the copy on the core serves.
            let replicated = try await cluster.pocket(["get", "kept", "striped", cluster.output("kept").path])
            print("partition: get of a replicated object: \(replicated.summary)")
            #expect(replicated.status == 0, "\(replicated.errors)")
            #expect(try Data(contentsOf: cluster.output("kept")) == Data(contentsOf: striped))
            #expect(reads["inline"]?.status == 0)
            #expect(failedSingles == farSingles, "failed reads are exactly the objects on far")
            // A delete of an object on "far" succeeds; its free waits for "far" to come back.
            let doomed = singles.indices.first { reads["one/\($0)"]?.status != 0 }
            if let doomed {
                let removal = try await cluster.succeed("rm", "both", "one/\(doomed)")
                print("partition: delete of an object on far: \(removal.summary)")
            }
            for (index, file) in singles.enumerated() where reads["one/\(index)"]?.status == 0 {
                #expect(try Data(contentsOf: cluster.output("one/\(index)")) == Data(contentsOf: file))
            }

            // New puts go to live servers once the metadata server has the controller's table (it
            // is pushed on a change; until it arrives, a put may still pick "far" and fail).
            let during = try cluster.file("during", size: 4 << 20, seed: 5)
            let put = try await eventually("a put while far is dead to succeed") {
                let run = try await cluster.pocket(["put", "both", "during", during.path])
                return run.status == 0 ? run : nil
            }
            print("partition: put of 4 MiB while far is dead: \(put.summary)")
            try await cluster.expectContents("both", "during", during)
            let listing = try await cluster.succeed("ls", "both")
            #expect(listing.output.contains("during\n") && listing.output.contains("striped\n"))

            // Other jobs: the one on the core alone, and one registered now.
            try await cluster.expectContents("near", "data", nearData)
            try await cluster.succeed("put", "near", "during", during.path)
            try await cluster.expectContents("near", "during", during)
            try await cluster.succeed("job", "register", "fresh")
            let freshMap = try #require(try await cluster.status().job("fresh")?.weightmap)
            #expect(freshMap["\(farID)"] == nil, "a job placed on a dead server: \(freshMap)")
            try await cluster.succeed("put", "fresh", "x", striped.path)
            try await cluster.expectContents("fresh", "x", striped)

            // 3. After healing: "far" kept its blocks and serves them (clients connect to it
            // directly); its heartbeats resume and it is active again.
            let partitioned = ContinuousClock.now - cut
            let healed = ContinuousClock.now
            try cluster.network.heal("far")
            try await cluster.expectContents("both", "striped", striped)
            for (index, file) in singles.enumerated() where index != doomed {
                try await cluster.expectContents("both", "one/\(index)", file)
            }
            let readable = ContinuousClock.now - healed
            // A heartbeat that timed out drops its connection, so the next one does not wait out
            // TCP's back-off on it: "far" is active again well before the hang guard.
            _ = try await cluster.waitFor(far, state: "active")
            let timeToActive = ContinuousClock.now - healed
            print(
                "partition: lasted \(partitioned); after the heal every object read back within \(readable), "
                    + "far active again after \(timeToActive)")
            // The free "far" missed reaches it once it is live again.
            if doomed != nil {
                try await eventually("far to hold \(farBlocksBeforeCut - 1) blocks, the missed free applied") {
                    Int(try await cluster.status().server(far.endpoint)?.blockCount ?? 0) == farBlocksBeforeCut - 1
                }
            }

            // New blocks go to "far" again once the metadata server has the new table: puts go on
            // until one of them (by far's own count, reported twice a second) placed a block there.
            let before = try await cluster.status().server(far.endpoint)?.blockCount ?? 0
            var afterKeys: [String] = []
            try await eventually("a new block to go to far after it came back", every: .milliseconds(500)) {
                let key = "after-\(afterKeys.count)"
                try await cluster.succeed("put", "both", key, striped.path)
                afterKeys.append(key)
                return (try await cluster.status().server(far.endpoint)?.blockCount ?? 0) > before
            }
            for key in afterKeys { try await cluster.expectContents("both", key, striped) }
        }
    }
}

// MARK: - A cluster split over two namespaces

/// One `pocket` command's outcome inside a namespace, with how long it took.
struct NamespacedRun: Sendable {
    var status: Int32
    var output: String
    var errors: String
    var elapsed: Duration

    var summary: String {
        let seconds = String(format: "%.2f s", elapsed / .seconds(1))
        return status == 0
            ? "ok in \(seconds)"
            : "failed in \(seconds): \(errors.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300))"
    }
}

/// `pocket status --json`, the parts these tests read.
struct StatusDocument: Decodable {
    struct Server: Decodable {
        var id: UInt32
        var kind: String
        var address: String
        var state: String
        var blockCount: UInt64
    }

    struct Job: Decodable {
        var name: String
        var weightmap: [String: Double]
    }

    var servers: [Server]
    var jobs: [Job]

    func server(_ endpoint: Endpoint) -> Server? { servers.first { $0.address == endpoint.description } }
    func job(_ name: String) -> Job? { jobs.first { $0.name == name } }
}

/// A controller, a metadata server, a storage server and the clients in namespace "core"; more
/// storage servers in namespace "far" when the test starts them. Every process runs through
/// `ip netns exec`; `pocket` commands run in "core" with their own POCKET_HOME.
final class SplitCluster: Sendable {
    let network: NamespaceNetwork
    let executable: URL
    let directory: URL
    let controller: LocalProcess
    let coreStorage: LocalProcess
    private let processes: Mutex<[LocalProcess]>

    private init(
        network: NamespaceNetwork, executable: URL, directory: URL, controller: LocalProcess, coreStorage: LocalProcess,
        processes: [LocalProcess]
    ) {
        self.network = network
        self.executable = executable
        self.directory = directory
        self.controller = controller
        self.coreStorage = coreStorage
        self.processes = Mutex(processes)
    }

    var all: [LocalProcess] { processes.withLock { $0 } }

    /// Starts the core; `stop` (or the network's deletion) ends every process started here.
    static func start(network: NamespaceNetwork, directory: URL) async throws -> SplitCluster {
        let executable = try pocketExecutable()
        let core = network.host("core").address
        var started: [LocalProcess] = []
        do {
            let controller = try await launch(
                "controller", in: "core", ["controller", "--listen", "\(core):0"], network: network,
                executable: executable, directory: directory)
            started.append(controller)
            let metadata = try await launch(
                "metadata", in: "core",
                ["metadata", "--listen", "\(core):0", "--controller", "\(controller.endpoint)"],
                network: network, executable: executable, directory: directory)
            started.append(metadata)
            let storage = try await launch(
                "storage-core", in: "core", storageArguments(listen: core, controller: controller.endpoint),
                network: network, executable: executable, directory: directory)
            started.append(storage)
            let cluster = SplitCluster(
                network: network, executable: executable, directory: directory, controller: controller,
                coreStorage: storage, processes: started)
            for process in [metadata, storage] { _ = try await cluster.waitFor(process, state: "active") }
            return cluster
        } catch {
            for process in started { await process.stop() }
            throw error
        }
    }

    private static func storageArguments(listen host: String, controller: Endpoint) -> [String] {
        ["storage", "--listen", "\(host):0", "--controller", "\(controller)", "--capacity", "1GiB"]
    }

    private static func launch(
        _ role: String, in host: String, _ arguments: [String], network: NamespaceNetwork, executable: URL,
        directory: URL
    ) async throws -> LocalProcess {
        try await LocalProcess.launch(
            executable: try IPRoute.executable(), role: role,
            arguments: network.arguments(in: host, [executable.path] + arguments + ["--log-level", "info"]),
            workDirectory: directory)
    }

    /// Starts a storage server in `host` and waits until the controller lists it as active.
    func startStorage(on host: String) async throws -> LocalProcess {
        let process = try await Self.launch(
            "storage-\(host)", in: host,
            Self.storageArguments(listen: network.host(host).address, controller: controller.endpoint),
            network: network, executable: executable, directory: directory)
        processes.withLock { $0.append(process) }
        _ = try await waitFor(process, state: "active")
        return process
    }

    func stop() async {
        await withTaskGroup(of: Void.self) { group in
            for process in all where process !== controller { group.addTask { await process.stop() } }
        }
        await controller.stop()
    }

    // MARK: The pocket command, in "core"

    /// Runs `pocket arguments…` in "core"; one that runs past `timeout` (a hang guard) is killed
    /// and reported.
    func pocket(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> NamespacedRun {
        var environment = ProcessInfo.processInfo.environment
        environment["POCKET_CONTROLLER"] = controller.endpoint.description
        environment["POCKET_HOME"] = directory.appendingPathComponent("home").path
        let started = ContinuousClock.now
        let result = try await runCommand(
            try IPRoute.executable(), network.arguments(in: "core", [executable.path] + arguments),
            environment: environment, deadline: timeout)
        let elapsed = ContinuousClock.now - started
        var run = NamespacedRun(status: result.status, output: result.output, errors: result.errors, elapsed: elapsed)
        if result.timedOut { run.errors += "\n(killed after \(elapsed): past its \(timeout) or the test's end)" }
        return run
    }

    /// Runs `pocket arguments…` and records an issue when it fails.
    @discardableResult
    func succeed(
        _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> NamespacedRun {
        let run = try await pocket(arguments)
        #expect(
            run.status == 0, "pocket \(arguments.joined(separator: " ")): \(run.errors)", sourceLocation: sourceLocation
        )
        return run
    }

    func status() async throws -> StatusDocument {
        let run = try await pocket(["status", "--json"])
        guard run.status == 0 else { throw PocketError(.unavailable, "pocket status: \(run.errors)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(StatusDocument.self, from: Data(run.output.utf8))
    }

    /// Polls `pocket status` until `process`'s server is in `state`; returns how long that took.
    func waitFor(_ process: LocalProcess, state: String) async throws -> Duration {
        let started = ContinuousClock.now
        try await eventually("\(process.role) to be \(state)") {
            try await status().server(process.endpoint)?.state == state
        }
        return ContinuousClock.now - started
    }

    /// Blocks per storage server once their reports add up to `total` (reports come twice a second).
    func blockCounts(totalling total: Int) async throws -> [UInt32: Int] {
        try await eventually("storage servers to report \(total) blocks") {
            let storage = try await status().servers.filter { $0.kind == "storage" }
            guard storage.reduce(0, { $0 + Int($1.blockCount) }) == total else { return nil }
            return Dictionary(uniqueKeysWithValues: storage.map { ($0.id, Int($0.blockCount)) })
        }
    }

    // MARK: Files

    /// A file of `size` bytes of the tests' pattern, for `pocket put`.
    func file(_ name: String, size: Int, seed: UInt64) throws -> URL {
        let url = directory.appendingPathComponent("input-\(name)")
        try Data(pattern(size, seed: seed).readableBytesView).write(to: url)
        return url
    }

    /// Where `pocket get` of `key` writes.
    func output(_ key: String) -> URL {
        directory.appendingPathComponent("output-" + key.replacingOccurrences(of: "/", with: "-"))
    }

    /// Gets `job`'s `key` and expects the bytes of `file`.
    func expectContents(
        _ job: String, _ key: String, _ file: URL, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let destination = output("\(job)-\(key)")
        try? FileManager.default.removeItem(at: destination)
        let run = try await pocket(["get", job, key, destination.path])
        #expect(run.status == 0, "get \(job) \(key): \(run.errors)", sourceLocation: sourceLocation)
        guard run.status == 0 else { return }
        #expect(
            try Data(contentsOf: destination) == Data(contentsOf: file), "\(job) \(key) read back different bytes",
            sourceLocation: sourceLocation)
    }
}

/// Runs `body` against a cluster split over namespaces "core" and "far"; always stops its processes,
/// deletes the namespaces and removes its directory, and shows the servers' logs when `body` fails.
func withSplitCluster<T>(_ body: (SplitCluster) async throws -> T) async throws -> T {
    let directory = try temporaryDirectory("partition")
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await withClusterSlot {
        try await withNamespaceNetwork(hosts: ["core", "far"]) { network in
            let cluster = try await SplitCluster.start(network: network, directory: directory)
            let result = await capture { try await body(cluster) }
            await cluster.stop()
            if case .failure = result {
                for process in cluster.all { print("---- \(process.role) log ----\n\(process.log.suffix(3000))") }
            }
            return try result.get()
        }
    }
}
