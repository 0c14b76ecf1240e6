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
    struct Metadata: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a metadata server.")

        @Option(help: "Address to listen on (port 0: any free port).") var listen = Endpoint(host: "127.0.0.1", port: 0)
        @OptionGroup var controller: ControllerOption
        @Option(help: "Memory for small objects kept inline.") var inlineCapacity = ByteSize(bytes: 1 << 30)
        @Option(help: "Seconds the block capabilities given to clients stay valid (at least 120).")
        var capabilityLifetime = 3600
        @OptionGroup var key: ClusterKeyOption
        @Option(help: "Address to give the controller and clients (default: the bound --listen address).")
        var advertise: Endpoint?
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var tls: TLSOptions

        func validate() throws {
            // Clients renew a capability 30 s before it expires; shorter lives would renew on every request.
            guard capabilityLifetime >= 120 else { throw ValidationError("--capability-lifetime must be at least 120") }
        }

        func run() async throws {
            let logger = log.bootstrap(label: "pocket.metadata")
            try tls.apply(.server)
            var configuration = MetadataServer.Configuration(
                listen: listen, controller: try controller.endpoint, key: try key.load())
            configuration.capabilityLifetime = .seconds(capabilityLifetime)
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
        @OptionGroup var key: ClusterKeyOption
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var tls: TLSOptions

        func validate() throws {
            guard capacity.bytes > 0 else { throw ValidationError("--capacity must be positive") }
            if tier != .dram, dataDir == nil { throw ValidationError("--tier \(tier) needs --data-dir") }
        }

        func run() async throws {
            let logger = log.bootstrap(label: "pocket.storage")
            try tls.apply(.server)
            var configuration = StorageServer.Configuration(
                listen: listen, controller: try controller.endpoint, capacityBytes: capacity.bytes, key: try key.load())
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
        @Option(help: "Throughput each storage server declares (default: its tier's).") var serverThroughput: ByteRate?
        @Option(help: "Storage tier; repeat for several (--tier dram --tier ssd --tier hdd).") var tier: [Tier] = [
            .dram
        ]
        @Option(help: "Directory for logs and the ssd/hdd tiers' block files (default: a new temporary directory).")
        var dataDir: String?
        @Option(help: "Where to mount Pocket.") var mount = "/pocket"
        @Flag(help: "Do not mount.") var noMount = false
        @Option(
            help: "Let the controller start more storage servers of each --tier, up to this many, when jobs need them.")
        var maxStorageServers: Int?
        @Flag(
            help:
                "Scale storage servers with load: add when busier than 80%, drain and stop when below 60% (down to --storage-servers)."
        )
        var autoscale = false
        @Option(help: "Rightsizing policy JSON for the controller (see `pocket controller --show-policy`).")
        var policy: String?
        @OptionGroup var log: LogOptions
        @OptionGroup var tls: TLSOptions

        func validate() throws {
            guard (1...64).contains(storageServers) else { throw ValidationError("--storage-servers must be 1…64") }
            if let maxStorageServers, !(storageServers...256).contains(maxStorageServers) {
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
            if let serverThroughput {
                options.storageThroughput = serverThroughput.bytesPerSecond
                options.controllerArguments += ["--server-throughput", "\(serverThroughput.bytesPerSecond)B/s"]
            }
            let tiers = Tier.allCases.filter(tier.contains)
            options.tiers = tiers
            options.logLevel = log.logLevel.rawValue
            options.policyFile = policy.map { URL(fileURLWithPath: $0).path }
            options.tls = try tls.files(for: .server)
            if autoscale || maxStorageServers.map({ $0 > storageServers }) == true {
                options.provision = Dictionary(uniqueKeysWithValues: tiers.map { ($0, capacity.bytes) })
                options.provisionLimits = storageServers...(maxStorageServers ?? 4 * storageServers)
                options.autoscale = autoscale
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

/// Prints a line at once, even when standard output is a file or pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
