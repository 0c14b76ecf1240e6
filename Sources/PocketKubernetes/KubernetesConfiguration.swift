import Foundation
import PocketProtocol

extension KubernetesProvisioner {
    /// Where the Kubernetes API is, how to authenticate to it, and what pods to start.
    public struct Configuration: Sendable {
        /// The service account's files, mounted into every pod that has one.
        public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

        /// The API server, `https://HOST:PORT` (or `http://` for a local proxy or a test fake).
        public var apiServer: URL
        /// Bearer token file; read again for every request, since projected tokens rotate.
        public var tokenPath = serviceAccountDirectory + "/token"
        /// CA bundle that signs the API server's certificate (https only).
        public var caPath = serviceAccountDirectory + "/ca.crt"
        /// The namespace to start pods in; nil reads `namespacePath`.
        public var namespace: String?
        public var namespacePath = serviceAccountDirectory + "/namespace"

        /// Container image holding the `pocket` executable.
        public var image: String
        public var imagePullPolicy = "IfNotPresent"
        /// The executable in the image (the container's command; Pocket's arguments follow).
        public var executable = "pocket"
        /// Address the started servers register with, e.g. `pocket-controller.pocket.svc:7070`.
        public var controllerAddress: String
        /// Value of the `pocket.managed-by` label on the pods it starts; it only stops pods with it.
        public var controllerName = "pocket-controller"

        /// Capacity in bytes of each storage server, for each tier it may start.
        public var capacities: [Tier: UInt64]
        public var startsMetadataServers = false
        /// Container resources per storage tier; a tier without an entry requests its capacity
        /// (memory for DRAM, ephemeral storage for SSD and HDD).
        public var storageResources: [Tier: ResourceRequirements] = [:]
        public var metadataResources = ResourceRequirements()
        /// The Secret holding the cluster key (`cluster.key`), which every server pod mounts.
        public var clusterKeySecret = "pocket-cluster-key"
        public var storagePort = 7080
        public var metadataPort = 7071

        /// Grace period for deleting a pod (the server gets SIGTERM, then SIGKILL after this).
        public var gracePeriodSeconds = 30
        /// Limit on one API request, connecting included.
        public var requestTimeout: Duration = .seconds(10)

        public init(apiServer: URL, image: String, controllerAddress: String, capacities: [Tier: UInt64]) {
            self.apiServer = apiServer
            self.image = image
            self.controllerAddress = controllerAddress
            self.capacities = capacities
        }

        /// The configuration of a pod that runs in the cluster: the API server from
        /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`, the service account's files.
        public static func inCluster(
            image: String, controllerAddress: String, capacities: [Tier: UInt64],
            environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws -> Configuration {
            guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
                let port = environment["KUBERNETES_SERVICE_PORT"], let portNumber = Int(port)
            else {
                throw PocketError(
                    .invalidArgument,
                    "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset")
            }
            let bracketed = host.contains(":") ? "[\(host)]" : host
            guard let url = URL(string: "https://\(bracketed):\(portNumber)") else {
                throw PocketError(.invalidArgument, "bad Kubernetes API address \(host):\(port)")
            }
            return Configuration(
                apiServer: url, image: image, controllerAddress: controllerAddress, capacities: capacities)
        }

        /// The resources a storage pod of `tier` asks for.
        func resources(for tier: Tier, capacity: UInt64) -> ResourceRequirements {
            if let configured = storageResources[tier] { return configured }
            // Requests only: the scheduler reserves the room, and no limit kills a busy server.
            let resource = tier == .dram ? "memory" : "ephemeral-storage"
            return ResourceRequirements(requests: [resource: "\(capacity)"])
        }

        /// The port a server of `kind` listens on in its pod.
        func port(of kind: ServerKind) -> Int {
            kind == .metadata ? metadataPort : storagePort
        }
    }
}
