import Foundation
import PocketController
import PocketProtocol
import PocketRPC
import Synchronization

/// Starts storage servers as child processes of the controller on this machine, each with a port
/// the kernel picks and (for SSD and HDD) its own data directory. They stop with the controller.
public final class LocalProvisioner: StorageProvisioner {
    public struct Options: Sendable {
        public var executable: URL
        public var workDirectory: URL
        public var controller: Endpoint
        /// Capacity of each server it starts, per tier it may start.
        public var capacities: [Tier: UInt64]
        public var maxServers: Int
        public var blockSize: UInt32?
        public var logLevel = "info"

        public init(executable: URL, workDirectory: URL, controller: Endpoint, capacities: [Tier: UInt64], maxServers: Int) {
            self.executable = executable
            self.workDirectory = workDirectory
            self.controller = controller
            self.capacities = capacities
            self.maxServers = maxServers
        }
    }

    public let options: Options
    private let started = Mutex<[LocalProcess]>([])
    private let counter = Atomic<Int>(0)

    public init(_ options: Options) {
        self.options = options
    }

    public var shapes: [Tier: (throughput: UInt64, capacity: UInt64)] {
        var shapes: [Tier: (throughput: UInt64, capacity: UInt64)] = [:]
        for (tier, capacity) in options.capacities { shapes[tier] = (tier.defaultServerThroughput, capacity) }
        return shapes
    }

    public var maxServers: Int { options.maxServers }

    public var processes: [LocalProcess] { started.withLock { $0 } }

    public func launch(tier: Tier, count: Int) async throws {
        guard let capacity = options.capacities[tier] else {
            throw PocketError(.invalidArgument, "this provisioner does not start \(tier) servers")
        }
        try FileManager.default.createDirectory(at: options.workDirectory, withIntermediateDirectories: true)
        try await withThrowingTaskGroup(of: LocalProcess.self) { group in
            for _ in 0..<count {
                let role = "provisioned-storage-\(counter.add(1, ordering: .relaxed).newValue)"
                var arguments = [
                    "storage", "--listen", "\(options.controller.host):0", "--controller", options.controller.description,
                    "--capacity", "\(capacity)", "--tier", "\(tier)", "--log-level", options.logLevel,
                ]
                if tier != .dram {
                    arguments += ["--data-dir", options.workDirectory.appendingPathComponent(role).path]
                    if let blockSize = options.blockSize { arguments += ["--block-size", "\(blockSize)"] }
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

    public func shutdown() async {
        let processes = started.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for process in processes { group.addTask { await process.stop() } }
        }
    }
}
