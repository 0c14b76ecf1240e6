import Foundation
import Logging
import NIOCore
import NIOPosix
import PocketController
import PocketProtocol
import Synchronization

/// Starts Pocket's storage and metadata servers as pods through the Kubernetes API, with the
/// controller pod's service account. Each pod runs one server that advertises its pod IP and
/// registers itself with the controller; the provisioner keeps the names of the pods it created,
/// stops one by the address its server registered with, and deletes them all at shutdown.
public final class KubernetesProvisioner: Provisioner {
    public let configuration: Configuration
    public let namespace: String
    private let client: KubernetesAPIClient
    private let logger: Logger
    private let created = Mutex<Set<String>>([])

    /// Reads the namespace file when the configuration names no namespace, and the CA for https.
    public init(
        _ configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws {
        self.configuration = configuration
        if let namespace = configuration.namespace {
            self.namespace = namespace
        } else if let data = FileManager.default.contents(atPath: configuration.namespacePath) {
            self.namespace = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            throw PocketError(
                .invalidArgument, "no namespace given and none readable at \(configuration.namespacePath)")
        }
        guard Self.isValidLabelValue(configuration.controllerName), Self.isValidLabelValue(namespace) else {
            throw PocketError(
                .invalidArgument,
                "controller name \"\(configuration.controllerName)\" and namespace \"\(namespace)\" must be "
                    + "at most 63 letters, digits, '-', '_' or '.'")
        }
        self.client = try KubernetesAPIClient(
            server: configuration.apiServer, tokenPath: configuration.tokenPath, caPath: configuration.caPath,
            timeout: configuration.requestTimeout, group: eventLoopGroup)
        var logger = logger
        logger[metadataKey: "kubernetes.namespace"] = "\(namespace)"
        self.logger = logger
    }

    public var storageShapes: [Tier: (throughput: UInt64, capacity: UInt64)] {
        var shapes: [Tier: (throughput: UInt64, capacity: UInt64)] = [:]
        for (tier, capacity) in configuration.capacities { shapes[tier] = (tier.defaultServerThroughput, capacity) }
        return shapes
    }

    public var startsMetadataServers: Bool { configuration.startsMetadataServers }

    /// Names of the pods it created and has not deleted.
    public var podNames: Set<String> { created.withLock { $0 } }

    private var podsPath: String { "/api/v1/namespaces/\(namespace)/pods" }

    /// Creates `count` pods at once; returns when the API has accepted them all, or throws the
    /// first failure once every request has finished (pods that were created are kept and recorded).
    public func launch(_ kind: ServerKind, tier: Tier, count: Int) async throws {
        let pod = try configuration.pod(kind, tier: tier, namespace: namespace)
        let failures = await withTaskGroup(of: (any Error)?.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        try await self.create(pod)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            return await group.reduce(into: [any Error]()) { failures, failure in
                if let failure { failures.append(failure) }
            }
        }
        if let first = failures.first {
            logger.warning(
                "could not create \(failures.count) of \(count) \(kind) pods: \(first)",
                metadata: ["server.kind": "\(kind)", "server.tier": "\(tier)"])
            throw first
        }
    }

    private func create(_ pod: Pod) async throws {
        let created = try await client.send(.POST, podsPath, json: pod, as: PodSummary.self)
        guard let name = created.metadata.name else {
            throw PocketError(.io, "Kubernetes API created a pod without a name")
        }
        self.created.withLock { _ = $0.insert(name) }
        logger.info("created pod", metadata: ["pod.name": "\(name)"])
    }

    /// Deletes the managed pod whose server registered as `address` (its pod IP and its role's
    /// port); false when no pod of this controller has that address.
    public func stop(address: String) async throws -> Bool {
        guard let (host, port) = Self.split(address) else { return false }
        let selector = "\(PodLabel.managedBy)%3D\(configuration.controllerName)"
        let pods = try await client.send(.GET, "\(podsPath)?labelSelector=\(selector)", as: PodSummaryList.self)
        let matches = pods.items.filter { pod in
            guard pod.status?.podIP == host, let role = pod.metadata.labels?[PodLabel.role] else { return false }
            let kind: ServerKind = role == "\(ServerKind.metadata)" ? .metadata : .storage
            return configuration.port(of: kind) == port
        }
        // A finished pod keeps its IP in its status after the IP went to a new pod: prefer a live one.
        let match = matches.first { !["Succeeded", "Failed"].contains($0.status?.phase) } ?? matches.first
        guard let name = match?.metadata.name else { return false }
        try await delete(name)
        logger.info("deleted pod", metadata: ["pod.name": "\(name)", "server.address": "\(address)"])
        return true
    }

    /// Deletes every pod it created; failures are logged, not thrown, so the rest still go.
    public func shutdown() async {
        let names = created.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for name in names {
                group.addTask {
                    do {
                        try await self.delete(name)
                    } catch {
                        self.logger.warning("could not delete pod: \(error)", metadata: ["pod.name": "\(name)"])
                    }
                }
            }
        }
    }

    /// Deletes a pod; one already gone counts as deleted.
    private func delete(_ name: String) async throws {
        let path = "\(podsPath)/\(name)?gracePeriodSeconds=\(configuration.gracePeriodSeconds)"
        do {
            _ = try await client.send(.DELETE, path, body: nil)
        } catch let error as PocketError where error.code == .notFound {
            logger.debug("pod already gone", metadata: ["pod.name": "\(name)"])
        }
        _ = created.withLock { $0.remove(name) }
    }

    /// `HOST:PORT` or `[V6]:PORT` into a bare host and a port.
    static func split(_ address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return nil
        }
        var host = address[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return (String(host), port)
    }

    /// Kubernetes' rule for label values (and, loosely, namespace names): at most 63 characters,
    /// alphanumerics and `-_.`, starting and ending with an alphanumeric.
    static func isValidLabelValue(_ value: String) -> Bool {
        let alphanumeric = { (c: Character) in c.isASCII && (c.isLetter || c.isNumber) }
        guard let first = value.first, let last = value.last, value.count <= 63 else { return false }
        return alphanumeric(first) && alphanumeric(last) && value.allSatisfy { alphanumeric($0) || "-_.".contains($0) }
    }
}
