import Foundation
import PocketProtocol
import PocketRPC

/// A `pocket` daemon running as a child process, with its output in a log file.
public final class LocalProcess: @unchecked Sendable {
    // @unchecked: `Process` is not Sendable, but every use here is a thread-safe query or signal.
    public let role: String
    public let endpoint: Endpoint
    public let logFile: URL
    private let process: Process

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    init(role: String, endpoint: Endpoint, logFile: URL, process: Process) {
        self.role = role
        self.endpoint = endpoint
        self.logFile = logFile
        self.process = process
    }

    /// Starts `executable arguments…` and waits until it is ready: it writes the file named by
    /// `--ready-file` (a server its bound address, a mount its mountpoint).
    public static func launch(
        executable: URL, role: String, arguments: [String], workDirectory: URL, timeout: Duration = .seconds(20),
        environment extra: [String: String] = [:], announcesEndpoint: Bool = true
    ) async throws -> LocalProcess {
        let readyFile = workDirectory.appendingPathComponent("\(role).ready")
        let logFile = workDirectory.appendingPathComponent("\(role).log")
        try? FileManager.default.removeItem(at: readyFile)
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        defer { try? log.close() }

        let process = Process()
        process.executableURL = executable
        process.arguments = arguments + ["--ready-file", readyFile.path]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        var environment = ProcessInfo.processInfo.environment
        environment["POCKET_PARENT_PID"] = String(getpid())
        environment.merge(extra) { $1 }
        process.environment = environment
        try process.run()

        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOf: readyFile, encoding: .utf8), text.hasSuffix("\n") {
                let announced = text.trimmingCharacters(in: .whitespacesAndNewlines)
                let endpoint = announcesEndpoint ? try Endpoint(parsing: announced) : Endpoint(host: announced, port: 0)
                return LocalProcess(role: role, endpoint: endpoint, logFile: logFile, process: process)
            }
            guard process.isRunning else {
                let output = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
                throw PocketError(
                    .unavailable, "\(role) exited with status \(process.terminationStatus): \(output.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.terminate()
        throw PocketError(.timedOut, "\(role) did not start within \(timeout)")
    }

    public func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Asks the process to stop, and kills it if it has not within `grace`.
    public func stop(grace: Duration = .seconds(5)) async {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
    }

    public func waitUntilExit() async {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }

    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
}
