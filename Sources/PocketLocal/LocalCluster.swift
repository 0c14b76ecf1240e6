import Foundation
import PocketClient
import PocketProtocol
import PocketRPC
import PocketSecurity
import Synchronization

/// A Pocket cluster as child processes of this one: a controller, metadata servers and storage
/// servers on loopback. `pocket up` runs one; the integration tests run many side by side, each on
/// ports the kernel picks.
public final class LocalCluster: Sendable {
    public struct Options: Sendable {
        public var executable: URL
        public var workDirectory: URL
        /// The controller's address; port 0 lets the kernel choose.
        public var controller = Endpoint(host: "127.0.0.1", port: 0)
        /// Storage servers of each tier in `tiers`.
        public var storageServers = 2
        public var storageCapacity: UInt64 = 1 << 30
        /// Throughput the storage servers declare (default: their tier's).
        public var storageThroughput: UInt64?
        public var tiers: [Tier] = [.dram]
        public var blockSize: UInt32?
        public var inlineLimit: UInt32?
        public var logLevel = "info"
        /// Tiers the controller may start more storage servers of, with each new server's capacity;
        /// empty: the controller starts none.
        public var provision: [Tier: UInt64] = [:]
        /// Storage servers per provisioned tier the controller keeps (counting the ones started here).
        public var provisionLimits: ClosedRange<Int> = 1...16
        /// Whether the controller scales the provisioned tiers on measured load.
        public var autoscale = false
        /// More arguments for the controller (thresholds, metadata provisioning, …).
        public var controllerArguments: [String] = []
        /// A rightsizing policy file for the controller.
        public var policyFile: String?
        /// Extra environment for every process (say, POCKET_HOME for a test's own token store).
        public var environment: [String: String] = [:]
        /// TLS for the whole cluster: every server serves only TLS and trusts the CA; mounts and this
        /// process's own client trust the CA. Nil: plain TCP.
        public var tls: TransportSecurity.Files?

        public init(executable: URL, workDirectory: URL) {
            self.executable = executable
            self.workDirectory = workDirectory
        }
    }

    public let options: Options
    private let controllerProcess: Mutex<LocalProcess>
    /// What this process uses to reach the cluster: loaded from `options.tls`.
    public let security: TransportSecurity
    private let members = Mutex<[LocalProcess]>([])
    private let counter = Atomic<Int>(0)

    /// The controller process (a new one after `restartController`, on the same address).
    public var controller: LocalProcess { controllerProcess.withLock { $0 } }

    public var processes: [LocalProcess] { [controller] + members.withLock { $0 } }
    public var storageServers: [LocalProcess] { members.withLock { $0.filter { $0.role.hasPrefix("storage") } } }
    public var metadataServers: [LocalProcess] { members.withLock { $0.filter { $0.role.hasPrefix("metadata") } } }

    private init(options: Options, controller: LocalProcess, security: TransportSecurity) {
        self.options = options
        controllerProcess = Mutex(controller)
        self.security = security
    }

    /// Starts the cluster and returns once every server has registered with the controller.
    public static func start(_ options: Options) async throws -> LocalCluster {
        // Loaded here first, so bad files are reported before any process starts.
        let security = try options.tls.map { try TransportSecurity($0) } ?? .plain
        try FileManager.default.createDirectory(at: options.workDirectory, withIntermediateDirectories: true)
        var options = options
        if options.environment["POCKET_CLUSTER_KEY"] == nil {
            // A key of the cluster's own, which every server it and its controller start shares.
            let path = options.workDirectory.appendingPathComponent("cluster.key").path
            _ = try ClusterKey.loadOrCreate(path: path)
            options.environment["POCKET_CLUSTER_KEY"] = path
        }
        // The cluster is new: the controller need not wait for servers of an earlier one.
        let controller = try await LocalProcess.launch(
            executable: options.executable, role: "controller",
            arguments: controllerArguments(options, listen: options.controller, newCluster: true),
            workDirectory: options.workDirectory, environment: options.environment)
        let cluster = LocalCluster(options: options, controller: controller, security: security)
        do {
            try await cluster.addMetadataServer()
            for tier in options.tiers {
                for _ in 0..<options.storageServers { try await cluster.addStorageServer(tier: tier) }
            }
            try await cluster.waitUntilRegistered()
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    static func controllerArguments(_ options: Options, listen: Endpoint, newCluster: Bool = false) -> [String] {
        var arguments = ["controller", "--listen", listen.description, "--log-level", options.logLevel]
        arguments += options.tls.arguments(server: true)
        if newCluster { arguments += ["--recovery-grace", "0"] }
        if let blockSize = options.blockSize { arguments += ["--block-size", "\(blockSize)"] }
        if let inlineLimit = options.inlineLimit { arguments += ["--inline-limit", "\(inlineLimit)"] }
        if let policyFile = options.policyFile { arguments += ["--policy", policyFile] }
        let limits = options.provisionLimits
        for (tier, capacity) in options.provision.sorted(by: { $0.key < $1.key }) {
            arguments += ["--provision", "\(tier):\(capacity):\(limits.lowerBound):\(limits.upperBound)"]
        }
        if options.autoscale { arguments.append("--autoscale") }
        arguments += options.controllerArguments
        arguments += ["--data-dir", options.workDirectory.appendingPathComponent("provisioned").path]
        return arguments
    }

    /// Starts a new controller on the address of the last one, which must have exited (a fault test
    /// kills it), with the default recovery grace period: the running servers register with it
    /// again and it rebuilds its state from them. Returns once it is listening.
    @discardableResult
    public func restartController() async throws -> LocalProcess {
        let old = controller
        guard !old.isRunning else {
            throw PocketError(.busy, "the controller (pid \(old.pid)) is still running; stop it first")
        }
        let index = counter.add(1, ordering: .relaxed).newValue
        let process = try await LocalProcess.launch(
            executable: options.executable, role: "controller-\(index)",
            arguments: Self.controllerArguments(options, listen: old.endpoint), workDirectory: options.workDirectory,
            environment: options.environment)
        controllerProcess.withLock { $0 = process }
        return process
    }

    /// Starts a metadata server; on `listen` (a restarted one's old address), else any free port.
    @discardableResult
    public func addMetadataServer(listen: Endpoint? = nil) async throws -> LocalProcess {
        let index = counter.add(1, ordering: .relaxed).newValue
        let address = listen ?? Endpoint(host: options.controller.host, port: 0)
        let process = try await LocalProcess.launch(
            executable: options.executable, role: "metadata-\(index)",
            arguments: [
                "metadata", "--listen", address.description, "--controller",
                controller.endpoint.description, "--log-level", options.logLevel,
            ] + options.tls.arguments(server: true),
            workDirectory: options.workDirectory, environment: options.environment)
        members.withLock { $0.append(process) }
        return process
    }

    @discardableResult
    public func addStorageServer(capacity: UInt64? = nil, tier: Tier = .dram) async throws -> LocalProcess {
        let index = counter.add(1, ordering: .relaxed).newValue
        var arguments = [
            "storage", "--listen", "\(options.controller.host):0", "--controller",
            controller.endpoint.description, "--capacity", "\(capacity ?? options.storageCapacity)",
            "--tier", "\(tier)", "--log-level", options.logLevel,
        ]
        if let throughput = options.storageThroughput { arguments += ["--throughput", "\(throughput)B/s"] }
        arguments += options.tls.arguments(server: true)
        if tier != .dram {
            arguments += ["--data-dir", options.workDirectory.appendingPathComponent("storage-\(index)").path]
            if let blockSize = options.blockSize { arguments += ["--block-size", "\(blockSize)"] }
        }
        let process = try await LocalProcess.launch(
            executable: options.executable, role: "storage-\(index)",
            arguments: arguments,
            workDirectory: options.workDirectory, environment: options.environment)
        members.withLock { $0.append(process) }
        return process
    }

    /// Mounts the cluster at `directory` with a `pocket mount` process; stopping the cluster unmounts.
    @discardableResult
    public func mount(at directory: String) async throws -> LocalProcess {
        let index = counter.add(1, ordering: .relaxed).newValue
        let process = try await LocalProcess.launch(
            executable: options.executable, role: "mount-\(index)",
            arguments: [
                "mount", directory, "--controller", controller.endpoint.description, "--log-level", options.logLevel,
            ]
                + options.tls.arguments(server: false),
            workDirectory: options.workDirectory, environment: options.environment, announcesEndpoint: false)
        members.withLock { $0.insert(process, at: 0) }
        return process
    }

    public var mounts: [LocalProcess] { members.withLock { $0.filter { $0.role.hasPrefix("mount") } } }

    /// Waits until the controller lists every running member as active.
    public func waitUntilRegistered(timeout: Duration = .seconds(20)) async throws {
        var configuration = PocketClient.Configuration()
        configuration.security = security
        let client = PocketClient(controller: controller.endpoint, configuration: configuration)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let expected = Set(
                members.withLock {
                    $0.filter { $0.isRunning && !$0.role.hasPrefix("mount") }.map(\.endpoint.description)
                })
            if let status = try? await client.status() {
                let active = Set(status.servers.filter { $0.state == .active }.map(\.address))
                if expected.isSubset(of: active) {
                    await client.close()
                    return
                }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        await client.close()
        throw PocketError(.timedOut, "servers did not register with the controller within \(timeout)")
    }

    /// Stops every process: mounts first (they unmount), then the servers, then the controller.
    public func stop() async {
        for mount in mounts { await mount.stop(grace: .seconds(10)) }
        let members = self.members.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for process in members where !process.role.hasPrefix("mount") { group.addTask { await process.stop() } }
        }
        await controller.stop()
    }
}
