import Foundation
import NIOCore
import PocketBench
import PocketClient
import PocketLocal
import PocketProtocol
import PocketRPC
import Testing

/// The `pocket` executable built beside this test bundle (or `POCKET_BIN`).
func pocketExecutable() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["POCKET_BIN"] { return URL(fileURLWithPath: path) }
    let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let candidate = bundle.appendingPathComponent("pocket")
    guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
        throw PocketError(.notFound, "no pocket executable at \(candidate.path): run `swift build` first or set POCKET_BIN")
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
/// (its token store; its output files go there too).
func pocket(_ arguments: [String], controller: String, home: URL, input: URL? = nil) throws -> PocketRun {
    let process = Process()
    process.executableURL = try pocketExecutable()
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["POCKET_CONTROLLER"] = controller
    environment["POCKET_HOME"] = home.path
    process.environment = environment
    let output = home.appendingPathComponent("stdout")
    let errors = home.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: output)
    process.standardError = try FileHandle(forWritingTo: errors)
    process.standardInput = try input.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return PocketRun(
        status: process.terminationStatus, output: try String(contentsOf: output, encoding: .utf8),
        errors: try String(contentsOf: errors, encoding: .utf8))
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
