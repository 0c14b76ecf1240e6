import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import PocketClient
import PocketProtocol
import PocketRPC

@main
struct Pocket: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pocket",
        abstract: "Elastic ephemeral storage for serverless analytics.",
        subcommands: [
            Up.self, Mount.self, Controller.self, Metadata.self, Storage.self, JobCommand.self, Put.self, Get.self,
            List.self,
            Remove.self, Status.self, BenchCommand.self, SoakCommand.self, SimulateCommand.self,
        ])

    /// Swift Concurrency's jobs run on NIO's event loops: a task awaiting a reply resumes on the
    /// loop that read it instead of waking a thread of another pool — two thread switches fewer
    /// per round trip (nothing here blocks a task's thread for long; file tiers use NIO's thread
    /// pool). Not in the FUSE daemon: there sixteen kernel-request threads feed tasks that copy
    /// block data, and two event loops doing that and the network measured about a third slower.
    static func main() async {
        FrameMemory.keepFreed()
        if CommandLine.arguments.dropFirst().first != "mount" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await main(nil)
    }
}

/// Prints `value` as JSON on one line, or indented with `pretty`; keys sorted, so output is stable.
func printJSON<T: Encodable>(_ value: T, pretty: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Where the controller is: `--controller`, else `POCKET_CONTROLLER`, else 127.0.0.1:7070.
struct ControllerOption: ParsableArguments {
    @Option(name: .long, help: "Controller address HOST:PORT (default $POCKET_CONTROLLER or 127.0.0.1:7070).")
    var controller: Endpoint?

    var endpoint: Endpoint {
        get throws {
            if let controller { return controller }
            return try Endpoint(
                parsing: ProcessInfo.processInfo.environment["POCKET_CONTROLLER"] ?? PocketClient.defaultController)
        }
    }

    func client() throws -> PocketClient {
        PocketClient(controller: try endpoint)
    }
}

struct LogOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func bootstrap(label: String) -> Logger {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension Endpoint: ExpressibleByArgument {
    public init?(argument: String) {
        guard let endpoint = try? Endpoint(parsing: argument) else { return nil }
        self = endpoint
    }
}

extension Tier: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.description) }
}

/// A size in bytes, with human units (`64KiB`, `10GiB`, `1.5GB`).
struct ByteSize: ExpressibleByArgument, Sendable {
    var bytes: UInt64
    init(bytes: UInt64) { self.bytes = bytes }
    init?(argument: String) {
        guard let bytes = try? Units.parseSize(argument) else { return nil }
        self.bytes = bytes
    }
    var defaultValueDescription: String { Units.formatSize(bytes) }
}

/// A rate in bytes per second (`600Mb/s`, `1GB/s`, `2GiB`).
struct ByteRate: ExpressibleByArgument, Sendable {
    var bytesPerSecond: UInt64
    init?(argument: String) {
        guard let rate = try? Units.parseRate(argument) else { return nil }
        bytesPerSecond = rate
    }
}

/// Runs `body` and keeps its outcome, so cleanup can run before a failure is rethrown.
func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}

/// A weight as a short decimal (0.5, 0.333).
func formatWeight(_ weight: Double) -> String {
    let rounded = (weight * 1000).rounded() / 1000
    return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
}

/// Left-aligned columns separated by two spaces.
struct TextTable {
    private var rows: [[String]]

    init(_ header: [String]) {
        rows = [header]
    }

    mutating func add(_ row: [String]) {
        rows.append(row)
    }

    func render() -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { column in
                column == row.count - 1
                    ? row[column] : row[column] + String(repeating: " ", count: widths[column] - row[column].count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
