import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import PocketKubernetes
import PocketProtocol
import Testing

/// How the provisioner fails and authenticates: API errors, dead and silent servers, the token,
/// the namespace file, in-cluster settings and TLS, against `FakeKubernetesAPI` (no cluster runs here).
@Suite struct KubernetesAPIFailureTests {
    struct APIErrorCase: Sendable, CustomTestStringConvertible {
        var fixture: String?
        var status: Int
        var code: PocketError.Code
        var message: String

        var testDescription: String { "\(status) → \(code.name)" }
    }

    static let apiErrors = [
        APIErrorCase(
            fixture: "status-403-forbidden", status: 403, code: .unauthorized,
            message: #"pods is forbidden: User "system:serviceaccount:pocket:pocket-controller" cannot create"#),
        APIErrorCase(
            fixture: "status-422-invalid", status: 422, code: .invalidArgument,
            message: "spec.containers[0].resources.requests[memory]: Invalid value"),
        APIErrorCase(
            fixture: "status-409-conflict", status: 409, code: .alreadyExists,
            message: "Operation cannot be fulfilled on pods"),
        // Not every failure is a Status object: a proxy in front of the API answers in plain text.
        APIErrorCase(fixture: nil, status: 503, code: .unavailable, message: "upstream connect error"),
    ]

    @Test(arguments: apiErrors)
    func apiErrorsCarryTheStatusAndTheAPIMessage(_ expected: APIErrorCase) async throws {
        try await Harness.run { harness in
            harness.fake.answer { _ in
                expected.fixture.map { .recorded($0, status: expected.status) }
                    ?? .reply(status: expected.status, body: Data(expected.message.utf8))
            }
            let provisioner = try harness.provisioner()
            let error = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .ssd, count: 1)
            }
            #expect(error?.code == expected.code)
            #expect(error?.message.contains(expected.message) == true, "\(String(describing: error))")
            #expect(error?.message.contains("POST /api/v1/namespaces/pocket/pods: \(expected.status)") == true)
            #expect(provisioner.podNames.isEmpty)
        }
    }

    /// Pods the API accepted before one was refused are kept, recorded and deleted at shutdown.
    @Test func partlyFailedLaunchKeepsThePodsThatWereCreated() async throws {
        try await Harness.run { harness in
            let replay = FakeKubernetesAPI.replay()
            let posts = Counter()
            harness.fake.answer { request in
                guard request.method == .POST, posts.next() == 2 else { return replay(request) }
                return .recorded("status-403-forbidden", status: 403)
            }
            let provisioner = try harness.provisioner()
            let error = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .ssd, count: 3)
            }
            #expect(error?.code == .unauthorized)
            #expect(provisioner.podNames.count == 2)
            await provisioner.shutdown()
            #expect(harness.fake.requests.filter { $0.method == .DELETE }.count == 2)
            #expect(provisioner.podNames.isEmpty)
        }
    }

    @Test func stopSurfacesAForbiddenList() async throws {
        try await Harness.run { harness in
            harness.fake.answer { _ in .recorded("status-403-forbidden", status: 403) }
            let provisioner = try harness.provisioner()
            let error = await #expect(throws: PocketError.self) {
                _ = try await provisioner.stop(address: "10.244.2.17:7080")
            }
            #expect(error?.code == .unauthorized)
            #expect(error?.message.contains("pods is forbidden") == true)
        }
    }

    @Test func deadAPIServerFailsFastWithAClearError() async throws {
        // A port that was just bound and closed: nothing listens there.
        let closed = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(closed.localAddress?.port)
        try await closed.close()
        try await withTemporaryDirectory { directory in
            try "token-1".write(to: directory.appendingPathComponent("token"), atomically: true, encoding: .utf8)
            var configuration = Harness.configuration(
                apiServer: URL(string: "http://127.0.0.1:\(port)")!, directory: directory)
            configuration.requestTimeout = .seconds(3)
            let provisioner = try KubernetesProvisioner(configuration, logger: quietLogger)
            let error = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .dram, count: 1)
            }
            // Refused, not timed out: the code says which.
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("http://127.0.0.1:\(port) unreachable") == true)
        }
    }

    @Test func silentAPIServerTimesOutInsteadOfHanging() async throws {
        try await Harness.run { harness in
            harness.fake.answer { _ in .silence }
            // Long enough for the requests to be sent on a machine busy with the rest of the suite.
            let provisioner = try harness.provisioner { $0.requestTimeout = .seconds(2) }
            // 2 s per request: the launch ends with a timeout, not a hang.
            let error = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .dram, count: 2)
            }
            #expect(error?.code == .timedOut)
            #expect(error?.message.contains("did not answer POST /api/v1/namespaces/pocket/pods") == true)
            // The requests arrived (on a loaded machine one may still be on its way when its time
            // is up); only the answers never came.
            #expect((1...2).contains(harness.fake.requests.count))
            await provisioner.shutdown()
        }
    }

    @Test func tokenIsReadAgainForEveryRequest() async throws {
        try await Harness.run { harness in
            let provisioner = try harness.provisioner()
            try await provisioner.launch(.storage, tier: .dram, count: 1)
            try harness.writeToken("token-2\n")
            try await provisioner.launch(.storage, tier: .dram, count: 1)
            try harness.writeToken("token-3")
            await provisioner.shutdown()
            #expect(
                harness.fake.requests.map { $0.headers["Authorization"] } == [
                    ["Bearer token-1"], ["Bearer token-2"], ["Bearer token-3"], ["Bearer token-3"],
                ])
        }
    }

    @Test func missingTokenIsAClearErrorAndSendsNothing() async throws {
        try await Harness.run { harness in
            try FileManager.default.removeItem(atPath: harness.tokenPath)
            let provisioner = try harness.provisioner()
            let error = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .dram, count: 1)
            }
            #expect(error?.code == .unauthorized)
            #expect(error?.message.contains("service account token at \(harness.tokenPath)") == true)
            #expect(harness.fake.requests.isEmpty)
        }
    }

    @Test func namespaceComesFromTheServiceAccountFile() async throws {
        try await withTemporaryDirectory { directory in
            let namespacePath = directory.appendingPathComponent("namespace").path
            try "pocket-staging\n".write(toFile: namespacePath, atomically: true, encoding: .utf8)
            try await Harness.run { harness in
                let provisioner = try harness.provisioner {
                    $0.namespace = nil
                    $0.namespacePath = namespacePath
                }
                #expect(provisioner.namespace == "pocket-staging")
                try await provisioner.launch(.storage, tier: .dram, count: 1)
                #expect(harness.fake.requests.first?.path == "/api/v1/namespaces/pocket-staging/pods")
            }
        }
    }

    @Test func missingNamespaceOrBadControllerNameIsRefused() async throws {
        try await withTemporaryDirectory { directory in
            let url = URL(string: "http://127.0.0.1:1")!
            var configuration = Harness.configuration(apiServer: url, directory: directory)
            configuration.namespace = nil
            configuration.namespacePath = directory.appendingPathComponent("absent").path
            #expect(throws: PocketError.self) { try KubernetesProvisioner(configuration, logger: quietLogger) }
            configuration.namespace = "pocket"
            configuration.controllerName = "pocket controller"
            #expect(throws: PocketError.self) { try KubernetesProvisioner(configuration, logger: quietLogger) }
        }
    }

    @Test(arguments: [
        (["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], "https://10.96.0.1:443"),
        (
            ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "6443"],
            "https://[fd00:10:96::1]:6443"
        ),
    ])
    func inClusterConfigurationUsesTheServiceEnvironment(environment: [String: String], url: String) throws {
        let configuration = try KubernetesProvisioner.Configuration.inCluster(
            image: Harness.image, controllerAddress: Harness.controller, capacities: [.dram: 1 << 30],
            environment: environment)
        #expect(configuration.apiServer.absoluteString == url)
        #expect(configuration.tokenPath == "/var/run/secrets/kubernetes.io/serviceaccount/token")
        #expect(configuration.caPath == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        #expect(configuration.namespacePath == "/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        #expect(configuration.namespace == nil)
    }

    @Test func inClusterConfigurationOutsideAPodIsAnError() {
        #expect(throws: PocketError.self) {
            try KubernetesProvisioner.Configuration.inCluster(
                image: Harness.image, controllerAddress: Harness.controller, capacities: [:], environment: [:])
        }
    }

    @Test func httpsTrustsTheServiceAccountCA() async throws {
        let tls = try Self.serverTLS()
        try await Harness.run(tls: tls) { harness in
            #expect(harness.fake.url.scheme == "https")
            let provisioner = try harness.provisioner { $0.caPath = Fixture.directory.path + "/tls/ca.crt" }
            try await provisioner.launch(.storage, tier: .dram, count: 1)
            #expect(harness.fake.requests.first?.headers["Authorization"] == ["Bearer token-1"])
        }
    }

    @Test func httpsWithoutTheCAFileIsRefusedAtOnce() async throws {
        try await withTemporaryDirectory { directory in
            let url = URL(string: "https://10.96.0.1")!
            var configuration = Harness.configuration(apiServer: url, directory: directory)
            configuration.caPath = directory.appendingPathComponent("ca.crt").path
            let error = #expect(throws: PocketError.self) {
                try KubernetesProvisioner(configuration, logger: quietLogger)
            }
            #expect(error?.message.contains("cannot load the Kubernetes API's CA from \(configuration.caPath)") == true)
        }
    }

    @Test func httpsRefusesAnAPIServerTheCADidNotSign() async throws {
        let tls = try Self.serverTLS()
        try await Harness.run(tls: tls) { harness in
            let provisioner = try harness.provisioner { $0.caPath = Fixture.directory.path + "/tls/other-ca.crt" }
            let error = await #expect(throws: PocketError.self) {
                try await provisioner.launch(.storage, tier: .dram, count: 1)
            }
            #expect(error?.code == .io)
            #expect(error?.message.contains("Kubernetes API at \(harness.fake.url)") == true)
            #expect(harness.fake.requests.isEmpty, "no token is sent to an unverified server")
        }
    }

    /// The fake's certificate: 127.0.0.1, signed by Fixtures/tls/ca.crt (test-only keys).
    static func serverTLS() throws -> NIOSSLContext {
        let directory = Fixture.directory.path + "/tls/"
        return try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(directory + "server.crt").map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: directory + "server.key", format: .pem))))
    }
}
