import PocketProtocol

/// Labels on every pod the provisioner starts; `managedBy` is how it finds its own pods again.
enum PodLabel {
    static let app = "app"
    static let role = "pocket.role"
    static let tier = "pocket.tier"
    static let managedBy = "pocket.managed-by"
}

extension KubernetesProvisioner.Configuration {
    /// Where SSD and HDD servers keep their blocks: an emptyDir volume, gone with the pod, as
    /// ephemeral data may be.
    static let dataDirectory = "/data"
    /// Where the cluster key's Secret is mounted (read-only, owner-only file).
    static let keyDirectory = "/etc/pocket"

    /// The pod for one server of `kind` (and `tier`, for storage). Pure: no I/O.
    func pod(_ kind: ServerKind, tier: Tier, namespace: String) throws -> Pod {
        let port = port(of: kind)
        var labels = [PodLabel.app: "pocket", PodLabel.role: "\(kind)", PodLabel.managedBy: controllerName]
        var arguments = [
            "\(kind)", "--listen", "0.0.0.0:\(port)", "--advertise", "$(POD_IP):\(port)",
            "--controller", controllerAddress, "--cluster-key", Self.keyDirectory + "/cluster.key",
        ]
        var resources = metadataResources
        var volumes = [Volume(name: "cluster-key", secret: .init(secretName: clusterKeySecret, defaultMode: 0o400))]
        var mounts = [VolumeMount(name: "cluster-key", mountPath: Self.keyDirectory, readOnly: true)]
        if kind == .storage {
            guard let capacity = capacities[tier] else {
                throw PocketError(.invalidArgument, "the Kubernetes provisioner does not start \(tier) servers")
            }
            labels[PodLabel.tier] = "\(tier)"
            arguments += ["--tier", "\(tier)", "--capacity", "\(capacity)"]
            resources = self.resources(for: tier, capacity: capacity)
            if tier != .dram {
                arguments += ["--data-dir", Self.dataDirectory]
                volumes.append(Volume(name: "data", emptyDir: .init(sizeLimit: "\(capacity)")))
                mounts.append(VolumeMount(name: "data", mountPath: Self.dataDirectory))
            }
        } else if !startsMetadataServers {
            throw PocketError(.invalidArgument, "the Kubernetes provisioner does not start metadata servers")
        }
        let container = Container(
            name: "\(kind)", image: image, imagePullPolicy: imagePullPolicy, command: [executable],
            args: arguments,
            // Kubernetes expands $(POD_IP) in the arguments from this variable.
            env: [EnvVar(name: "POD_IP", valueFrom: .init(fieldRef: .init(fieldPath: "status.podIP")))],
            ports: [ContainerPort(name: "pocket", containerPort: port)], resources: resources, volumeMounts: mounts)
        let prefix = kind == .storage ? "pocket-storage-\(tier)-" : "pocket-metadata-"
        return Pod(
            metadata: ObjectMeta(generateName: prefix, namespace: namespace, labels: labels),
            spec: PodSpec(
                containers: [container], volumes: volumes,
                // The controller replaces lost servers itself; a restarted one would come back empty.
                restartPolicy: "Never",
                // The servers never call the Kubernetes API.
                automountServiceAccountToken: false))
    }
}
