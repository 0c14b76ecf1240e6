import Foundation
import NIOCore
import PocketBench
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import PocketTestSupport
import Testing

/// Clusters of processes running at once across the integration suites: two, so a test's cluster
/// shares the machine's two cores with at most one other (`POCKET_TEST_CLUSTERS` overrides).
let clusterSlots = Slots(Int(ProcessInfo.processInfo.environment["POCKET_TEST_CLUSTERS"] ?? "") ?? 2)

/// Runs `body` holding one of the `clusterSlots`.
func withClusterSlot<T>(_ body: () async throws -> T) async throws -> T {
    await clusterSlots.acquire()
    let result = await capture(body)
    await clusterSlots.release()
    return try result.get()
}

/// The `pocket` executable built beside this test bundle (or `POCKET_BIN`).
func pocketExecutable() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["POCKET_BIN"] { return URL(fileURLWithPath: path) }
    let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let candidate = bundle.appendingPathComponent("pocket")
    guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
        throw PocketError(
            .notFound, "no pocket executable at \(candidate.path): run `swift build` first or set POCKET_BIN")
    }
    return candidate
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory(_ label: String) throws -> URL {
    let url = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("pocket-test-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Runs `body` against a real cluster of processes on loopback (kernel-chosen ports), and always
/// stops the processes and removes the directory; a failing test gets the servers' logs attached.
func withCluster<T>(
    storageServers: Int = 2, capacity: UInt64 = 1 << 30, inlineLimit: UInt32? = nil,
    clientConfiguration: PocketClient.Configuration = .init(),
    configure: (inout LocalCluster.Options) -> Void = { _ in },
    _ body: (LocalCluster, PocketClient) async throws -> T
) async throws -> T {
    try await withClusterSlot {
        try await runCluster(
            storageServers: storageServers, capacity: capacity, inlineLimit: inlineLimit,
            clientConfiguration: clientConfiguration, configure: configure, body)
    }
}

private func runCluster<T>(
    storageServers: Int, capacity: UInt64, inlineLimit: UInt32?, clientConfiguration: PocketClient.Configuration,
    configure: (inout LocalCluster.Options) -> Void, _ body: (LocalCluster, PocketClient) async throws -> T
) async throws -> T {
    let directory = try temporaryDirectory("cluster")
    var options = LocalCluster.Options(executable: try pocketExecutable(), workDirectory: directory)
    options.storageServers = storageServers
    options.storageCapacity = capacity
    options.inlineLimit = inlineLimit
    configure(&options)
    let cluster = try await LocalCluster.start(options)
    let client = PocketClient(controller: cluster.controller.endpoint, configuration: clientConfiguration)
    let result = await capture { try await body(cluster, client) }
    await client.close()
    await cluster.stop()
    if case .failure = result {
        for process in cluster.processes {
            print("---- \(process.role) log ----\n\(process.log.suffix(3000))")
        }
    }
    try? FileManager.default.removeItem(at: directory)
    return try result.get()
}

func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}

/// What a `pocket` command printed, and how it exited.
struct PocketRun {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs the `pocket` command as a user would, against `controller`, with `home` as its POCKET_HOME
/// (its token store).
func pocket(_ arguments: [String], controller: String, home: URL, input: URL? = nil) async throws -> PocketRun {
    var environment = ProcessInfo.processInfo.environment
    environment["POCKET_CONTROLLER"] = controller
    environment["POCKET_HOME"] = home.path
    let result = try await runCommand(try pocketExecutable(), arguments, environment: environment, input: input)
    return PocketRun(status: result.status, output: result.output, errors: result.errors)
}

/// Asks a server directly, on a connection of its own.
func ask<R: WireRequest>(_ endpoint: Endpoint, _ request: R) async throws -> R.Response {
    let connection = try await RPCConnection.connect(to: endpoint, timeout: .seconds(5))
    let result = await capture { try await connection.call(request) }
    await connection.close()
    return try result.get()
}

/// Bytes that differ from object to object: a failed copy or a misplaced block shows.
func pattern(_ size: Int, seed: UInt64) -> ByteBuffer {
    Bench.contents(size: size, seed: seed &* 0x9E37_79B9_7F4A_7C15)
}

func errorCode(_ error: any Error) -> PocketError.Code? {
    (error as? PocketError)?.code
}
