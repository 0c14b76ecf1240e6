import Foundation

/// How a command a test ran ended.
public struct CommandResult: Sendable {
    public var status: Int32
    public var output: String
    public var errors: String
    /// Killed at the hang guard rather than exited by itself.
    public var timedOut: Bool
}

/// Runs `executable arguments…` to completion without holding a thread while it runs (Swift's
/// cooperative pool has one thread per core; a blocking wait there stalls every other test), its
/// output and errors in files so neither pipe can fill. `deadline` is a hang guard: the process is
/// killed and the result says so.
public func runCommand(
    _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil,
    input: URL? = nil, deadline: Duration = .seconds(120)
) async throws -> CommandResult {
    let scratch = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("pocket-command-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("out")
    let errors = scratch.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errors.path, contents: nil)

    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = directory }
    let outputHandle = try FileHandle(forWritingTo: output)
    let errorHandle = try FileHandle(forWritingTo: errors)
    defer {
        try? outputHandle.close()
        try? errorHandle.close()
    }
    process.standardOutput = outputHandle
    process.standardError = errorHandle
    process.standardInput = try input.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
    let (exits, exited) = AsyncStream.makeStream(of: Int32.self)
    process.terminationHandler = { finished in
        exited.yield(finished.terminationStatus)
        exited.finish()
    }
    try process.run()
    let pid = process.processIdentifier

    var timedOut = false
    let status = await withTaskGroup(of: Int32?.self) { group in
        group.addTask {
            for await status in exits { return status }
            return nil
        }
        group.addTask {
            try? await Task.sleep(for: deadline)
            return nil
        }
        while let next = await group.next() {
            if let status = next {
                group.cancelAll()
                return status
            }
            if !timedOut {  // the hang guard (or the test's cancellation) came first
                timedOut = true
                kill(pid, SIGKILL)
            }
        }
        return Int32(-1)
    }
    return CommandResult(
        status: status, output: try String(contentsOf: output, encoding: .utf8),
        errors: try String(contentsOf: errors, encoding: .utf8), timedOut: timedOut)
}
