import ArgumentParser
import Foundation
import PocketController
import PocketKubernetes
import PocketLocal
import PocketProtocol
import PocketRPC
import Synchronization

extension Pocket {
    struct Controller: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the controller daemon.")

        @Option(help: "Address to listen on.") var listen = Endpoint(host: "127.0.0.1", port: 7070)
        @Option(help: "Address the servers it starts reach it at (default: the bound --listen address).")
        var advertise: Endpoint?
        @Option(help: "Block size for the cluster.") var blockSize = ByteSize(bytes: 64 << 10)
        @Option(help: "Objects up to this size are kept inline by metadata servers (one round trip).")
        var inlineLimit = ByteSize(bytes: 8 << 10)
        @Option(help: "Rightsizing policy JSON: per-lambda throughput, default nodes, node shapes and prices per tier.")
        var policy: String?
        @Flag(help: "Print the rightsizing policy in effect (defaults, or --policy) as JSON and exit.")
        var showPolicy = false
        @Option(
            help: ArgumentHelp(
                "Seconds after start to wait for the servers of a running cluster to register again (and metadata "
                    + "servers to report their jobs) before giving out new server ids, admitting jobs, pushing server "
                    + "tables or scaling; 0 for a cluster known to be new.",
                valueName: "seconds"))
        var recoveryGrace = 3.0
        @OptionGroup var key: ClusterKeyOption
        @OptionGroup var scaling: ScalingOptions
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var tls: TLSOptions

        func validate() throws {
            guard blockSize.bytes >= 4096, blockSize.bytes <= 8 << 20 else {
                throw ValidationError("--block-size must be between 4 KiB and 8 MiB")
            }
            guard inlineLimit.bytes <= blockSize.bytes else {
                throw ValidationError("--inline-limit must not exceed the block size")
            }
            guard recoveryGrace >= 0, recoveryGrace <= 600 else {
                throw ValidationError("--recovery-grace must be between 0 and 600 seconds")
            }
        }

        func run() async throws {
            var settings = ControllerState.Settings()
            settings.blockSize = UInt32(blockSize.bytes)
            settings.inlineLimit = UInt32(inlineLimit.bytes)
            settings.recoveryGrace = .milliseconds(Int64((recoveryGrace * 1000).rounded()))
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
            try tls.apply(.server)
            // The provisioner needs the controller's address, known once bound; nothing asks it for
            // servers before then.
            let provisioner = DeferredProvisioner()
            let service = ControllerService(
                settings: settings, scaling: scaling.scaling(provisioner), key: try key.load(), logger: logger)
            let server = try await RPCServer.bind(listen, handler: service, logger: logger)
            if scaling.enabled {
                let address = advertise ?? server.localAddress
                let made: any Provisioner
                switch scaling.provisioner {
                case .local:
                    made = LocalProvisioner(
                        scaling.localOptions(
                            controller: address, log: log, blockSize: blockSize, tls: try tls.files(for: .server)))
                case .kubernetes:
                    guard try tls.files(for: .server) == nil else {
                        throw ValidationError("TLS is not passed to Kubernetes pods yet: use --provisioner local")
                    }
                    made = try KubernetesProvisioner(
                        scaling.kubernetesConfiguration(controller: address), logger: logger)
                }
                provisioner.target.withLock { $0 = made }
            }
            logger.info("controller listening on \(server.localAddress)")
            try await daemon.run([server, service], address: server.localAddress, logger: logger)
        }
    }
}

enum ProvisionerKind: String, ExpressibleByArgument, CaseIterable {
    case local, kubernetes
}

/// How the controller starts, stops and sizes servers.
struct ScalingOptions: ParsableArguments {
    @Option(help: "How servers are started: local child processes, or pods through the Kubernetes API.")
    var provisioner = ProvisionerKind.local
    @Option(help: "Image of the server pods (--provisioner kubernetes).") var kubernetesImage: String?
    @Option(help: "Namespace of the server pods (default: the service account's).") var kubernetesNamespace: String?
    @Option(
        help: ArgumentHelp(
            "Let the controller start storage servers of TIER with CAPACITY each, keeping MIN to MAX of them "
                + "(default 1 to --max-storage-servers).",
            valueName: "tier:capacity[:min:max]"))
    var provision: [ProvisionSpec] = []
    @Option(help: "The most storage servers of a tier, when --provision does not say.") var maxStorageServers = 16
    @Option(help: "Throughput the started storage servers declare (default: the tier's).")
    var serverThroughput: ByteRate?
    @Flag(help: "Let the controller start (and drain) metadata servers too.") var provisionMetadata = false
    @Option(help: "Fewest metadata servers.") var minMetadataServers = 1
    @Option(help: "Most metadata servers.") var maxMetadataServers = 4
    @Flag(help: "Scale the provisioned pools on measured CPU, network and capacity utilisation.")
    var autoscale = false
    @Option(help: "Drain a server when utilisation stays below this.") var scaleLower = 0.6
    @Option(help: "Add servers when utilisation goes above this.") var scaleUpper = 0.8
    @Option(help: "Seconds below --scale-lower before a server is drained.") var scaleDownAfter = 5.0
    @Option(help: "Seconds a pool is left alone after a scaling action.") var scaleCooldown = 3.0
    @Option(help: "Directory for started servers' logs and block files (default: a new temporary directory).")
    var dataDir: String?

    var enabled: Bool { !provision.isEmpty || provisionMetadata }

    func validate() throws {
        guard maxStorageServers >= 1 else { throw ValidationError("--max-storage-servers must be positive") }
        guard 0 < scaleLower, scaleLower < scaleUpper, scaleUpper <= 1 else {
            throw ValidationError("need 0 < --scale-lower < --scale-upper ≤ 1")
        }
        guard 1 <= minMetadataServers, minMetadataServers <= maxMetadataServers else {
            throw ValidationError("need 1 ≤ --min-metadata-servers ≤ --max-metadata-servers")
        }
        guard scaleDownAfter >= 0, scaleCooldown >= 0 else { throw ValidationError("durations must not be negative") }
        if autoscale, !enabled { throw ValidationError("--autoscale needs --provision or --provision-metadata") }
        if provisioner == .kubernetes, kubernetesImage == nil {
            throw ValidationError("--provisioner kubernetes needs --kubernetes-image")
        }
    }

    func scaling(_ provisioner: any Provisioner) -> ControllerService.Scaling? {
        guard enabled else { return nil }
        var scaling = ControllerService.Scaling(provisioner: provisioner)
        scaling.autoscale = autoscale
        scaling.autoscaler.lower = scaleLower
        scaling.autoscaler.upper = scaleUpper
        scaling.autoscaler.scaleDownAfter = .milliseconds(Int64(scaleDownAfter * 1000))
        scaling.autoscaler.cooldown = .milliseconds(Int64(scaleCooldown * 1000))
        for spec in provision {
            scaling.autoscaler.limits[.storage(spec.tier)] =
                spec.minimum...(spec.maximum ?? max(maxStorageServers, spec.minimum))
        }
        if provisionMetadata { scaling.autoscaler.limits[.metadata] = minMetadataServers...maxMetadataServers }
        return scaling
    }

    func kubernetesConfiguration(controller: Endpoint) throws -> KubernetesProvisioner.Configuration {
        var configuration = try KubernetesProvisioner.Configuration.inCluster(
            image: kubernetesImage!, controllerAddress: controller.description,
            capacities: Dictionary(provision.map { ($0.tier, $0.capacity) }) { $1 })
        configuration.namespace = kubernetesNamespace
        configuration.startsMetadataServers = provisionMetadata
        return configuration
    }

    func localOptions(
        controller: Endpoint, log: LogOptions, blockSize: ByteSize, tls: TransportSecurity.Files?
    ) -> LocalProvisioner.Options {
        var options = LocalProvisioner.Options(
            executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            workDirectory: URL(
                fileURLWithPath: dataDir ?? NSTemporaryDirectory() + "pocket-controller-\(getpid())", isDirectory: true),
            controller: controller,
            capacities: Dictionary(provision.map { ($0.tier, $0.capacity) }) { $1 })
        options.startsMetadataServers = provisionMetadata
        if let serverThroughput {
            for spec in provision { options.throughput[spec.tier] = serverThroughput.bytesPerSecond }
        }
        options.blockSize = UInt32(blockSize.bytes)
        options.logLevel = log.logLevel.rawValue
        options.tls = tls
        return options
    }
}

/// `--provision TIER:CAPACITY[:MIN:MAX]`.
struct ProvisionSpec: ExpressibleByArgument {
    var tier: Tier
    var capacity: UInt64
    var minimum = 1
    var maximum: Int?

    init?(argument: String) {
        let parts = argument.split(separator: ":").map(String.init)
        guard parts.count == 2 || parts.count == 4, let tier = Tier(name: parts[0]),
            let capacity = try? Units.parseSize(parts[1]), capacity > 0
        else { return nil }
        self.tier = tier
        self.capacity = capacity
        if parts.count == 4 {
            guard let minimum = Int(parts[2]), let maximum = Int(parts[3]), 0 <= minimum, minimum <= maximum,
                maximum >= 1
            else { return nil }
            self.minimum = minimum
            self.maximum = maximum
        }
    }
}

/// A provisioner whose real one is set once the controller knows its own address.
final class DeferredProvisioner: Provisioner {
    let target = Mutex<(any Provisioner)?>(nil)

    private var provisioner: any Provisioner {
        get throws {
            guard let provisioner = target.withLock({ $0 }) else {
                throw PocketError(.unavailable, "the provisioner is not ready")
            }
            return provisioner
        }
    }

    var storageShapes: [Tier: (throughput: UInt64, capacity: UInt64)] { target.withLock { $0?.storageShapes ?? [:] } }
    var startsMetadataServers: Bool { target.withLock { $0?.startsMetadataServers ?? false } }

    func launch(_ kind: ServerKind, tier: Tier, count: Int) async throws {
        try await provisioner.launch(kind, tier: tier, count: count)
    }

    func stop(address: String) async throws -> Bool { try await provisioner.stop(address: address) }

    func shutdown() async { await target.withLock { $0 }?.shutdown() }
}
