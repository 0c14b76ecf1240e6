import ArgumentParser
import Foundation
import Logging
import PocketController
import PocketLocal
import PocketMetadata
import PocketProtocol
import PocketRPC
import PocketStorage
import ServiceLifecycle
import Synchronization

struct DaemonOptions: ParsableArguments {
    @Option(help: "Write the bound address to this file once listening (for supervisors).")
    var readyFile: String?

    /// Runs the daemon's services until SIGTERM/SIGINT; announces readiness first.
    func run(_ services: [any Service], address: Endpoint, logger: Logger) async throws {
        try await run(services, announcing: address.description, logger: logger)
    }

    func run(_ services: [any Service], announcing: String, logger: Logger) async throws {
        if let readyFile {
            let temporary = readyFile + ".tmp"
            try (announcing + "\n").write(toFile: temporary, atomically: false, encoding: .utf8)
            _ = rename(temporary, readyFile)
        }
        var all = services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
        if let parent = ProcessInfo.processInfo.environment["POCKET_PARENT_PID"].flatMap(Int32.init) {
            all.append(
                .init(
                    service: ParentWatch(parent: parent, logger: logger),
                    successTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(
            configuration: .init(services: all, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Shuts a child daemon down (gracefully: a mount unmounts) when its parent (`pocket up`, a test)
/// died without stopping it.
struct ParentWatch: Service {
    let parent: Int32
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if getppid() != parent {
                    logger.warning("parent process \(parent) is gone; shutting down")
                    return
                }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
    }
}

extension Pocket {
    struct Controller: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the controller daemon.")

        @Option(help: "Address to listen on.") var listen = Endpoint(host: "127.0.0.1", port: 7070)
        @Option(help: "Block size for the cluster.") var blockSize = ByteSize(bytes: 64 << 10)
        @Option(help: "Objects up to this size are kept inline by metadata servers (one round trip).")
        var inlineLimit = ByteSize(bytes: 8 << 10)
        @Option(help: "Rightsizing policy JSON: per-lambda throughput, default nodes, node shapes and prices per tier.")
        var policy: String?
        @Flag(help: "Print the rightsizing policy in effect (defaults, or --policy) as JSON and exit.")
        var showPolicy = false
        @Option(
            help: ArgumentHelp(
                "Let the controller start storage servers of TIER with CAPACITY each when jobs need them.",
                valueName: "tier:capacity"))
        var provision: [ProvisionSpec] = []
        @Option(help: "The most storage servers the provisioner lets the cluster have.") var maxStorageServers = 16
        @Option(help: "Directory for started servers' logs and block files (default: a new temporary directory).")
        var dataDir: String?
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions

        func validate() throws {
            guard blockSize.bytes >= 4096, blockSize.bytes <= 8 << 20 else {
                throw ValidationError("--block-size must be between 4 KiB and 8 MiB")
            }
            guard inlineLimit.bytes <= blockSize.bytes else {
                throw ValidationError("--inline-limit must not exceed the block size")
            }
            guard maxStorageServers >= 1 else { throw ValidationError("--max-storage-servers must be positive") }
        }

        func run() async throws {
            var settings = ControllerState.Settings()
            settings.blockSize = UInt32(blockSize.bytes)
            settings.inlineLimit = UInt32(inlineLimit.bytes)
            if let policy {
                let data: Data
                do { data = try Data(contentsOf: URL(fileURLWithPath: policy)) } catch {
                    throw ValidationError("cannot read --policy \(policy): \(error.localizedDescription)")
                }
                do { settings.policy = try RightsizingPolicy(json: data) } catch {
                    throw ValidationError("--policy \(policy): \(error.message)")
                }
            }
            if showPolicy {
                say(settings.policy.json)
                return
            }
            let logger = log.bootstrap(label: "pocket.controller")
            // The provisioner needs the controller's address, known once bound; requests that
            // could use it only come after registration, which needs that address too.
            let provisioning = DeferredProvisioner()
            let service = ControllerService(
                settings: settings, provisioner: provision.isEmpty ? nil : provisioning, logger: logger)
            let server = try await RPCServer.bind(listen, handler: service, logger: logger)
            if !provision.isEmpty {
                var options = LocalProvisioner.Options(
                    executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                    workDirectory: URL(
                        fileURLWithPath: dataDir ?? NSTemporaryDirectory() + "pocket-controller-\(getpid())",
                        isDirectory: true),
                    controller: server.localAddress,
                    capacities: Dictionary(provision.map { ($0.tier, $0.capacity) }) { $1 },
                    maxServers: maxStorageServers)
                options.blockSize = settings.blockSize
                options.logLevel = log.logLevel.rawValue
                provisioning.target.withLock { $0 = LocalProvisioner(options) }
            }
            logger.info("controller listening on \(server.localAddress)")
            try await daemon.run([server, service], address: server.localAddress, logger: logger)
        }
    }

    struct Metadata: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a metadata server.")

        @Option(help: "Address to listen on (port 0: any free port).") var listen = Endpoint(host: "127.0.0.1", port: 0)
        @OptionGroup var controller: ControllerOption
        @Option(help: "Memory for small objects kept inline.") var inlineCapacity = ByteSize(bytes: 1 << 30)
        @Option(help: "Address to give the controller and clients (default: the bound --listen address).")
        var advertise: Endpoint?
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            let logger = log.bootstrap(label: "pocket.metadata")
            var configuration = MetadataServer.Configuration(listen: listen, controller: try controller.endpoint)
            configuration.inlineCapacity = inlineCapacity.bytes
            configuration.advertise = advertise?.description
            let metadata = try await MetadataServer.start(configuration, logger: logger)
            logger.info("metadata server listening on \(metadata.server.localAddress)")
            try await daemon.run(metadata.services, address: metadata.server.localAddress, logger: logger)
        }
    }

    struct Storage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a storage server.")

        @Option(help: "Address to listen on (port 0: any free port).") var listen = Endpoint(host: "127.0.0.1", port: 0)
        @OptionGroup var controller: ControllerOption
        @Option(help: "Bytes this server may hold.") var capacity = ByteSize(bytes: 4 << 30)
        @Option(help: "Storage tier: dram keeps blocks in memory, ssd and hdd in a file under --data-dir.")
        var tier = Tier.dram
        @Option(help: "Directory for the ssd and hdd tiers' block file.") var dataDir: String?
        @Option(help: "Largest block the file tiers hold (the cluster's block size).")
        var blockSize = ByteSize(bytes: 64 << 10)
        @Option(help: "Declared throughput (default: 8Gb/s for dram and ssd, 1.6Gb/s for hdd).")
        var throughput: ByteRate?
        @Option(help: "Address to give the controller and clients (default: the bound --listen address).")
        var advertise: Endpoint?
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions

        func validate() throws {
            guard capacity.bytes > 0 else { throw ValidationError("--capacity must be positive") }
            if tier != .dram, dataDir == nil { throw ValidationError("--tier \(tier) needs --data-dir") }
        }

        func run() async throws {
            let logger = log.bootstrap(label: "pocket.storage")
            var configuration = StorageServer.Configuration(
                listen: listen, controller: try controller.endpoint, capacityBytes: capacity.bytes)
            configuration.throughput = throughput?.bytesPerSecond ?? tier.defaultServerThroughput
            configuration.advertise = advertise?.description
            let store: any BlockStore =
                tier == .dram
                ? DRAMBlockStore(capacityBytes: capacity.bytes)
                : try FileBlockStore(
                    tier: tier, directory: URL(fileURLWithPath: dataDir!), capacityBytes: capacity.bytes,
                    slotSize: Int(blockSize.bytes))
            let storage = try await StorageServer.start(configuration, store: store, logger: logger)
            logger.info("\(tier) storage server listening on \(storage.server.localAddress)")
            try await daemon.run(storage.services, address: storage.server.localAddress, logger: logger)
        }
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a controller, a metadata server and storage servers on this machine.")

        @Option(help: "Controller address.") var listen = Endpoint(host: "127.0.0.1", port: 7070)
        @Option(help: "Number of storage servers of each tier.") var storageServers = 2
        @Option(help: "Capacity of each storage server.") var capacity = ByteSize(bytes: 4 << 30)
        @Option(help: "Storage tier; repeat for several (--tier dram --tier ssd --tier hdd).") var tier: [Tier] = [.dram]
        @Option(help: "Directory for logs and the ssd/hdd tiers' block files (default: a new temporary directory).")
        var dataDir: String?
        @Option(help: "Where to mount Pocket.") var mount = "/pocket"
        @Flag(help: "Do not mount.") var noMount = false
        @Option(
            help: "Let the controller start more storage servers of the --tier tiers, up to this many in all, when jobs need them.")
        var maxStorageServers: Int?
        @Option(help: "Rightsizing policy JSON for the controller (see `pocket controller --show-policy`).")
        var policy: String?
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard (1...64).contains(storageServers) else { throw ValidationError("--storage-servers must be 1…64") }
            if let maxStorageServers, !(storageServers * Set(tier).count...256).contains(maxStorageServers) {
                throw ValidationError("--max-storage-servers must be between --storage-servers and 256")
            }
        }

        func run() async throws {
            let logger = log.bootstrap(label: "pocket.up")
            let work = URL(
                fileURLWithPath: dataDir ?? NSTemporaryDirectory() + "pocket-up-\(getpid())", isDirectory: true)
            var options = LocalCluster.Options(
                executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(), workDirectory: work)
            options.controller = listen
            options.storageServers = storageServers
            options.storageCapacity = capacity.bytes
            let tiers = Tier.allCases.filter(tier.contains)
            options.tiers = tiers
            options.logLevel = log.logLevel.rawValue
            options.policyFile = policy.map { URL(fileURLWithPath: $0).path }
            if let maxStorageServers, maxStorageServers > storageServers * tiers.count {
                options.provision = Dictionary(uniqueKeysWithValues: tiers.map { ($0, capacity.bytes) })
                options.maxStorageServers = maxStorageServers
            }
            let cluster = try await LocalCluster.start(options)
            if !noMount {
                do {
                    try await cluster.mount(at: mount)
                } catch {
                    await cluster.stop()
                    throw error
                }
            }
            say(
                "Pocket is up: controller \(cluster.controller.endpoint), 1 metadata server, "
                    + tiers.map { "\(storageServers) \($0)" }.joined(separator: ", ")
                    + " storage server\(storageServers * tiers.count == 1 ? "" : "s") of \(Units.formatSize(capacity.bytes)) each"
                    + (noMount ? "" : ", mounted at \(mount)") + ".\n"
                    + "Logs in \(work.path). Ctrl-C stops everything.")
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: ClusterSupervisor(cluster: cluster, logger: logger))],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}

/// Keeps `pocket up` running until a signal, then stops the cluster; reports children that die.
struct ClusterSupervisor: Service {
    let cluster: LocalCluster
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var reported = Set<Int32>()
            while !Task.isCancelled {
                for process in cluster.processes where !process.isRunning && reported.insert(process.pid).inserted {
                    logger.error("\(process.role) (pid \(process.pid)) exited; see \(process.logFile.path)")
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        await cluster.stop()
        say("Pocket stopped.")
    }
}

/// `--provision TIER:CAPACITY`.
struct ProvisionSpec: ExpressibleByArgument {
    var tier: Tier
    var capacity: UInt64

    init?(argument: String) {
        let parts = argument.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let tier = Tier(name: parts[0]), let capacity = try? Units.parseSize(parts[1]),
            capacity > 0
        else { return nil }
        self.tier = tier
        self.capacity = capacity
    }
}

/// A provisioner whose real one is set once the controller knows its own address.
final class DeferredProvisioner: StorageProvisioner {
    let target = Mutex<LocalProvisioner?>(nil)

    var shapes: [Tier: (throughput: UInt64, capacity: UInt64)] { target.withLock { $0?.shapes ?? [:] } }
    var maxServers: Int { target.withLock { $0?.maxServers ?? 0 } }

    func launch(tier: Tier, count: Int) async throws {
        guard let provisioner = target.withLock({ $0 }) else {
            throw PocketError(.unavailable, "the provisioner is not ready")
        }
        try await provisioner.launch(tier: tier, count: count)
    }

    func shutdown() async { await target.withLock { $0 }?.shutdown() }
}

/// Prints a line at once, even when standard output is a file or pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
