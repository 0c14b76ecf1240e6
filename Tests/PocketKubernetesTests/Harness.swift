import Foundation
import Logging
import NIOSSL
import PocketKubernetes
import PocketProtocol

/// A `FakeKubernetesAPI` with its own token file and temporary directory, all torn down when `run`
/// returns or throws, so tests can run in parallel; `provisioner` makes one that talks to the fake.
struct Harness {
    static let image = "registry.example/pocket:0.4.0"
    static let controller = "pocket-controller.pocket.svc:7070"
    static let capacities: [Tier: UInt64] = [.dram: 8 << 30, .ssd: 100 << 30, .hdd: 1 << 40]

    let fake: FakeKubernetesAPI
    let directory: URL

    var tokenPath: String { directory.appendingPathComponent("token").path }

    func writeToken(_ token: String) throws {
        try token.write(toFile: tokenPath, atomically: true, encoding: .utf8)
    }

    /// A provisioner for the fake, namespace `pocket`, changed by `configure`.
    func provisioner(
        _ configure: (inout KubernetesProvisioner.Configuration) -> Void = { _ in }
    ) throws -> KubernetesProvisioner {
        var configuration = Self.configuration(apiServer: fake.url, directory: directory)
        configure(&configuration)
        return try KubernetesProvisioner(configuration, logger: quietLogger)
    }

    /// A configuration for an API server at `url`, with the token file in `directory`.
    static func configuration(apiServer url: URL, directory: URL) -> KubernetesProvisioner.Configuration {
        var configuration = KubernetesProvisioner.Configuration(
            apiServer: url, image: image, controllerAddress: controller, capacities: capacities)
        configuration.tokenPath = directory.appendingPathComponent("token").path
        configuration.namespace = "pocket"
        // A hang guard, not a bound: the fake answers from this process, which a loaded machine
        // can slow many times over. Tests of timeouts set their own.
        configuration.requestTimeout = .seconds(60)
        return configuration
    }

    static func run<T>(tls: NIOSSLContext? = nil, _ body: (Harness) async throws -> T) async throws -> T {
        try await withTemporaryDirectory { directory in
            try "token-1".write(to: directory.appendingPathComponent("token"), atomically: true, encoding: .utf8)
            let fake = try await FakeKubernetesAPI.start(tls: tls)
            do {
                let result = try await body(Harness(fake: fake, directory: directory))
                await fake.close()
                return result
            } catch {
                await fake.close()
                throw error
            }
        }
    }
}

let quietLogger = Logger(label: "pocket.kubernetes.test") { _ in SwiftLogNoOpLogHandler() }

func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pocket-k8s-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}
