import Foundation
import PocketClient
import PocketLocal
import PocketProtocol
import PocketTestSupport
import Testing

/// A cluster with `mounts` FUSE mounts of it (as separate hosts would have), each on a fresh
/// directory. The mounts are unmounted whatever happens, and a test never leaves one behind.
struct Mounted {
    var cluster: LocalCluster
    var client: PocketClient
    var mounts: [String]
    var home: URL

    /// The environment the mounts and command-line tools share (their token store).
    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["POCKET_HOME"] = home.path
        environment["POCKET_CONTROLLER"] = cluster.controller.endpoint.description
        return environment
    }
}

func withMountedCluster<T>(
    mounts: Int = 1, storageServers: Int = 2, capacity: UInt64 = 1 << 30, logLevel: String = "info",
    _ body: (Mounted) async throws -> T
) async throws -> T {
    try await withClusterSlot {
        try await runMountedCluster(
            mounts: mounts, storageServers: storageServers, capacity: capacity, logLevel: logLevel, body)
    }
}

private func runMountedCluster<T>(
    mounts: Int, storageServers: Int, capacity: UInt64, logLevel: String, _ body: (Mounted) async throws -> T
) async throws -> T {
    let directory = try temporaryDirectory("mount")
    let home = directory.appendingPathComponent("home")
    var options = LocalCluster.Options(executable: try pocketExecutable(), workDirectory: directory)
    options.logLevel = logLevel
    options.storageServers = storageServers
    options.storageCapacity = capacity
    options.environment = ["POCKET_HOME": home.path]
    let cluster = try await LocalCluster.start(options)
    let client = PocketClient(controller: cluster.controller.endpoint)
    let points = (0..<mounts).map { directory.appendingPathComponent("mnt\($0)").path }
    let result = await capture {
        for point in points { try await cluster.mount(at: point) }
        return try await body(Mounted(cluster: cluster, client: client, mounts: points, home: home))
    }
    await client.close()
    await cluster.stop()
    for point in points where isMounted(point) {
        Issue.record("\(point) was still mounted after its daemon stopped")
        _ = umount2(point, Int32(MNT_DETACH))
    }
    if case .failure = result {
        for process in cluster.processes { print("---- \(process.role) log ----\n\(process.log.suffix(3000))") }
    }
    try? FileManager.default.removeItem(at: directory)
    return try result.get()
}

func isMounted(_ path: String) -> Bool {
    let table = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
    return table.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
}

struct ShellResult {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs a shell script (killed at `timeout`, a hang guard) and returns its exit status and output.
@discardableResult
func shell(
    _ script: String, in directory: String? = nil, environment: [String: String]? = nil,
    timeout: Duration = .seconds(120)
) async throws -> ShellResult {
    let result = try await runCommand(
        URL(fileURLWithPath: "/bin/sh"), ["-c", script], environment: environment,
        directory: directory.map { URL(fileURLWithPath: $0) }, deadline: timeout)
    guard !result.timedOut else {
        throw PocketError(.timedOut, "script did not finish within \(timeout): \(script.prefix(200))")
    }
    return ShellResult(status: result.status, output: result.output, errors: result.errors)
}
