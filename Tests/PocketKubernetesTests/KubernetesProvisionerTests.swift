import Foundation
import NIOHTTP1
import PocketKubernetes
import PocketProtocol
import Testing

/// The requests the provisioner sends for each operation, and what it makes of the answers, against
/// `FakeKubernetesAPI` (recorded responses; no cluster runs here).
@Suite struct KubernetesProvisionerTests {
    @Test(arguments: Tier.allCases)
    func storageLaunchPostsOnePodPerServer(tier: Tier) async throws {
        try await Harness.run { harness in
            let provisioner = try harness.provisioner()
            try await provisioner.launch(.storage, tier: tier, count: 2)
            let requests = harness.fake.requests
            #expect(requests.count == 2)
            let capacity = "\(Harness.capacities[tier]!)"
            for request in requests {
                #expect(request.method == .POST)
                #expect(request.uri == "/api/v1/namespaces/pocket/pods")
                #expect(request.headers["Authorization"] == ["Bearer token-1"])
                #expect(request.headers["Content-Type"] == ["application/json"])
                #expect(request.headers["Host"] == ["127.0.0.1:\(harness.fake.url.port!)"])
                let pod = request.json
                #expect(pod["apiVersion"].string == "v1")
                #expect(pod["kind"].string == "Pod")
                #expect(pod["metadata"]["generateName"].string == "pocket-storage-\(tier)-")
                #expect(pod["metadata"]["namespace"].string == "pocket")
                #expect(
                    pod["metadata"]["labels"].value as? [String: String] == [
                        "app": "pocket", "pocket.role": "storage", "pocket.tier": "\(tier)",
                        "pocket.managed-by": "pocket-controller",
                    ])
                #expect(pod["spec"]["restartPolicy"].string == "Never")
                #expect(pod["spec"]["automountServiceAccountToken"].bool == false)
                let container = pod["spec"]["containers"][0]
                #expect(pod["spec"]["containers"].count == 1)
                #expect(container["image"].string == Harness.image)
                #expect(container["imagePullPolicy"].string == "IfNotPresent")
                #expect(container["command"].strings == ["pocket"])
                var args = [
                    "storage", "--listen", "0.0.0.0:7080", "--advertise", "$(POD_IP):7080",
                    "--controller", Harness.controller, "--cluster-key", "/etc/pocket/cluster.key",
                    "--tier", "\(tier)", "--capacity", capacity,
                ]
                if tier != .dram { args += ["--data-dir", "/data"] }
                #expect(container["args"].strings == args)
                expectPodIPFromDownwardAPI(container)
                expectClusterKeySecret(pod)
                #expect(container["ports"][0]["containerPort"].int == 7080)
                if tier == .dram {
                    #expect(pod["spec"]["volumes"].count == 1)
                    #expect(container["volumeMounts"].count == 1)
                    #expect(container["resources"]["requests"]["memory"].string == capacity)
                } else {
                    #expect(pod["spec"]["volumes"].count == 2)
                    #expect(pod["spec"]["volumes"][1]["name"].string == "data")
                    #expect(pod["spec"]["volumes"][1]["emptyDir"]["sizeLimit"].string == capacity)
                    #expect(container["volumeMounts"][1]["name"].string == "data")
                    #expect(container["volumeMounts"][1]["mountPath"].string == "/data")
                    #expect(container["resources"]["requests"]["ephemeral-storage"].string == capacity)
                }
            }
            #expect(provisioner.podNames == ["pocket-storage-\(tier)-00001", "pocket-storage-\(tier)-00002"])
        }
    }

    @Test func metadataLaunchPostsMetadataPods() async throws {
        try await Harness.run { harness in
            let provisioner = try harness.provisioner { $0.startsMetadataServers = true }
            #expect(provisioner.startsMetadataServers)
            try await provisioner.launch(.metadata, tier: .dram, count: 1)
            let request = try #require(harness.fake.requests.first)
            #expect(request.method == .POST)
            #expect(request.uri == "/api/v1/namespaces/pocket/pods")
            #expect(request.headers["Authorization"] == ["Bearer token-1"])
            let pod = request.json
            #expect(pod["metadata"]["generateName"].string == "pocket-metadata-")
            #expect(
                pod["metadata"]["labels"].value as? [String: String] == [
                    "app": "pocket", "pocket.role": "metadata", "pocket.managed-by": "pocket-controller",
                ])
            let container = pod["spec"]["containers"][0]
            #expect(container["command"].strings == ["pocket"])
            #expect(
                container["args"].strings == [
                    "metadata", "--listen", "0.0.0.0:7071", "--advertise", "$(POD_IP):7071",
                    "--controller", Harness.controller, "--cluster-key", "/etc/pocket/cluster.key",
                ])
            expectPodIPFromDownwardAPI(container)
            expectClusterKeySecret(pod)
            #expect(container["ports"][0]["containerPort"].int == 7071)
            #expect(pod["spec"]["volumes"].count == 1)
            #expect(provisioner.podNames == ["pocket-metadata-00001"])
        }
    }

    @Test func configuredResourcesReplaceTheDefaults() async throws {
        let dram = ResourceRequirements(requests: ["memory": "9Gi", "cpu": "2"], limits: ["memory": "10Gi"])
        try await Harness.run { harness in
            try await harness.provisioner { $0.storageResources[.dram] = dram }.launch(.storage, tier: .dram, count: 1)
            let resources = try #require(harness.fake.requests.first).json["spec"]["containers"][0]["resources"]
            #expect(resources["requests"].value as? [String: String] == ["memory": "9Gi", "cpu": "2"])
            #expect(resources["limits"].value as? [String: String] == ["memory": "10Gi"])
        }
    }

    @Test func launchRefusesWhatItIsNotConfiguredToStart() async throws {
        try await Harness.run { harness in
            let provisioner = try harness.provisioner { $0.capacities = [.ssd: 1 << 30] }
            #expect(!provisioner.startsMetadataServers)
            let hdd = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .hdd, count: 1)
            }
            #expect(hdd?.code == .invalidArgument)
            let metadata = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.metadata, tier: .dram, count: 1)
            }
            #expect(metadata?.code == .invalidArgument)
            #expect(harness.fake.requests.isEmpty)
        }
    }

    @Test func storageShapesAreTheConfiguredTiers() async throws {
        try await Harness.run { harness in
            let shapes = try harness.provisioner { $0.capacities = [.ssd: 5 << 30, .hdd: 7 << 30] }.storageShapes
            #expect(Set(shapes.keys) == [.ssd, .hdd])
            #expect(shapes[.ssd]?.throughput == Tier.ssd.defaultServerThroughput)
            #expect(shapes[.ssd]?.capacity == 5 << 30)
            #expect(shapes[.hdd]?.throughput == Tier.hdd.defaultServerThroughput)
            #expect(shapes[.hdd]?.capacity == 7 << 30)
        }
    }

    @Test func stopDeletesThePodAtThatAddress() async throws {
        // Recorded names: the created pod is the list's pocket-storage-ssd-7xk2p at 10.244.2.17.
        try await Harness.run { harness in
            harness.fake.answer(with: FakeKubernetesAPI.replay(renamePods: false))
            let provisioner = try harness.provisioner { $0.gracePeriodSeconds = 5 }
            try await provisioner.launch(.storage, tier: .ssd, count: 1)
            #expect(provisioner.podNames == ["pocket-storage-ssd-7xk2p"])
            let stopped = try await provisioner.stop(address: "10.244.2.17:7080")
            #expect(stopped)
            let requests = harness.fake.requests.dropFirst()
            #expect(requests.map(\.method) == [.GET, .DELETE])
            #expect(requests.first?.path == "/api/v1/namespaces/pocket/pods")
            #expect(requests.first?.query == "labelSelector=pocket.managed-by%3Dpocket-controller")
            #expect(requests.last?.path == "/api/v1/namespaces/pocket/pods/pocket-storage-ssd-7xk2p")
            #expect(requests.last?.query == "gracePeriodSeconds=5")
            #expect(requests.allSatisfy { $0.headers["Authorization"] == ["Bearer token-1"] })
            #expect(provisioner.podNames.isEmpty)
            await provisioner.shutdown()
            #expect(harness.fake.requests.count == 3, "a stopped pod is not deleted again")
        }
    }

    @Test func stopFindsMetadataPodsByTheirPort() async throws {
        try await Harness.run { harness in
            let stopped = try await harness.provisioner().stop(address: "10.244.1.9:7071")
            #expect(stopped)
            #expect(harness.fake.requests.last?.method == .DELETE)
            #expect(harness.fake.requests.last?.path == "/api/v1/namespaces/pocket/pods/pocket-metadata-q4n8d")
        }
    }

    /// Unknown IPs, a known IP with the other role's port, a pending pod without an IP, nonsense.
    @Test(arguments: ["10.244.9.9:7080", "10.244.2.17:7071", "10.244.1.9:7080", ":7080", "not-an-address"])
    func stopReturnsFalseForAddressesOfNoManagedPod(address: String) async throws {
        try await Harness.run { harness in
            let stopped = try await harness.provisioner().stop(address: address)
            #expect(!stopped)
            #expect(!harness.fake.requests.contains { $0.method == .DELETE })
        }
    }

    @Test func shutdownDeletesEveryPodItCreated() async throws {
        try await Harness.run { harness in
            let provisioner = try harness.provisioner { $0.startsMetadataServers = true }
            try await provisioner.launch(.storage, tier: .dram, count: 2)
            try await provisioner.launch(.metadata, tier: .dram, count: 1)
            let created = provisioner.podNames
            #expect(created.count == 3)
            await provisioner.shutdown()
            let deletes = harness.fake.requests.filter { $0.method == .DELETE }
            #expect(Set(deletes.map { $0.path.split(separator: "/").last.map(String.init) ?? "" }) == created)
            #expect(deletes.allSatisfy { $0.query == "gracePeriodSeconds=30" })
            #expect(provisioner.podNames.isEmpty)
        }
    }

    /// A pod someone else already deleted counts as deleted: stop says true, shutdown forgets it.
    @Test func podsAlreadyGoneCountAsDeleted() async throws {
        try await Harness.run { harness in
            let replay = FakeKubernetesAPI.replay()
            harness.fake.answer { request in
                request.method == .DELETE ? .recorded("status-404-notfound", status: 404) : replay(request)
            }
            let provisioner = try harness.provisioner()
            try await provisioner.launch(.storage, tier: .ssd, count: 1)
            let stopped = try await provisioner.stop(address: "10.244.2.17:7080")
            #expect(stopped)
            await provisioner.shutdown()
            #expect(provisioner.podNames.isEmpty)
            #expect(harness.fake.requests.filter { $0.method == .DELETE }.count == 2)
        }
    }

    private func expectPodIPFromDownwardAPI(_ container: JSON, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(container["env"].count == 1, sourceLocation: sourceLocation)
        #expect(container["env"][0]["name"].string == "POD_IP", sourceLocation: sourceLocation)
        #expect(
            container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"].string == "status.podIP",
            sourceLocation: sourceLocation)
    }

    /// Every server pod mounts the cluster key's Secret read-only, first of its volumes.
    private func expectClusterKeySecret(_ pod: JSON, sourceLocation: SourceLocation = #_sourceLocation) {
        let volume = pod["spec"]["volumes"][0]
        #expect(volume["name"].string == "cluster-key", sourceLocation: sourceLocation)
        #expect(volume["secret"]["secretName"].string == "pocket-cluster-key", sourceLocation: sourceLocation)
        #expect(volume["secret"]["defaultMode"].int == 0o400, sourceLocation: sourceLocation)
        let mount = pod["spec"]["containers"][0]["volumeMounts"][0]
        #expect(mount["mountPath"].string == "/etc/pocket", sourceLocation: sourceLocation)
        #expect(mount["readOnly"].bool == true, sourceLocation: sourceLocation)
    }
}
