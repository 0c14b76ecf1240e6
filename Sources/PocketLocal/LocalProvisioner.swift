import Foundation
import PocketController
import PocketProtocol
import PocketRPC
import Synchronization

/// Starts storage and metadata servers as child processes of the controller on this machine, each
/// on a port the kernel picks and (SSD, HDD) with its own data directory, and stops them when they
/// are drained. They stop with the controller.
public final class LocalProvisioner: Provisioner {
    public struct Options: Sendable {
        public var executable: URL
        public var workDirectory: URL
        public var controller: Endpoint
        /// The storage tiers it may start, with each new server's capacity.
        public var capacities: [Tier: UInt64]
        public var startsMetadataServers = false
        /// Declared throughput of new storage servers (default: the tier's).
        public var throughput: [Tier: UInt64] = [:]
        public var blockSize: UInt32?
        public var logLevel = "info"
        /// TLS files the started servers serve with and trust (as the controller's own); nil: plain.
        public var tls: TransportSecurity.Files?

        public init(executable: URL, workDirectory: URL, controller: Endpoint, capacities: [Tier: UInt64]) {
            self.executable = executable
            self.workDirectory = workDirectory
            self.controller = controller
            self.capacities = capacities
        }
    }

    public let options: Options
    private let started = Mutex<[LocalProcess]>([])
    private let counter = Atomic<Int>(0)

    public init(_ options: Options) {
        self.options = options
    }

    public var storageShapes: [Tier: (throughput: UInt64, capacity: UInt64)] {
        var shapes: [Tier: (throughput: UInt64, capacity: UInt64)] = [:]
        for (tier, capacity) in options.capacities {
            shapes[tier] = (options.throughput[tier] ?? tier.defaultServerThroughput, capacity)
        }
        return shapes
    }

    public var startsMetadataServers: Bool { options.startsMetadataServers }

    public func launch(_ kind: ServerKind, tier: Tier, count: Int) async throws {
        let arguments = try self.arguments(kind, tier: tier)
        try FileManager.default.createDirectory(at: options.workDirectory, withIntermediateDirectories: true)
        try await withThrowingTaskGroup(of: LocalProcess.self) { group in
            for _ in 0..<count {
                let role =
                    "provisioned-\(kind == .metadata ? "metadata" : "storage-\(tier)")-"
                    + "\(counter.add(1, ordering: .relaxed).newValue)"
                var arguments = arguments
                if kind == .storage, tier != .dram {
                    arguments += ["--data-dir", options.workDirectory.appendingPathComponent(role).path]
                }
                group.addTask {
                    try await LocalProcess.launch(
                        executable: self.options.executable, role: role, arguments: arguments,
                        workDirectory: self.options.workDirectory)
                }
            }
            for try await process in group { started.withLock { $0.append(process) } }
        }
    }

    private func arguments(_ kind: ServerKind, tier: Tier) throws(PocketError) -> [String] {
        var common = [
            "--listen", "\(options.controller.host):0", "--controller", options.controller.description,
            "--log-level", options.logLevel,
        ]
        common += options.tls.arguments(server: true)
        if kind == .metadata {
            guard options.startsMetadataServers else {
                throw PocketError(.invalidArgument, "this provisioner does not start metadata servers")
            }
            return ["metadata"] + common
        }
        guard let capacity = options.capacities[tier] else {
            throw PocketError(.invalidArgument, "this provisioner does not start \(tier) servers")
        }
        var arguments = ["storage"] + common + ["--capacity", "\(capacity)", "--tier", "\(tier)"]
        if let throughput = options.throughput[tier] { arguments += ["--throughput", "\(throughput)B/s"] }
        if tier != .dram, let blockSize = options.blockSize { arguments += ["--block-size", "\(blockSize)"] }
        return arguments
    }

    public func stop(address: String) async throws -> Bool {
        let process = started.withLock { processes in
            processes.firstIndex { $0.endpoint.description == address }.map { processes.remove(at: $0) }
        }
        guard let process else { return false }
        await process.stop()
        let dataDirectory = options.workDirectory.appendingPathComponent(process.role)
        try? FileManager.default.removeItem(at: dataDirectory)
        return true
    }

    public func shutdown() async {
        let processes = started.withLock { processes in
            defer { processes.removeAll() }
            return processes
        }
        await withTaskGroup(of: Void.self) { group in
            for process in processes { group.addTask { await process.stop() } }
        }
    }
}
