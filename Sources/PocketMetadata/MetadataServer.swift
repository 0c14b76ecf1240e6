import Logging
import PocketProtocol
import PocketRPC
import PocketSecurity
import ServiceLifecycle

/// A metadata daemon: namespaces for the jobs the controller assigns it, plus cluster membership.
public struct MetadataServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: Endpoint
        public var controller: Endpoint
        public var advertise: String?
        /// Memory for objects small enough to be kept inline.
        public var inlineCapacity: UInt64 = 1 << 30
        public var key: ClusterKey
        /// How long the capabilities given to clients stay valid.
        public var capabilityLifetime: Duration = .seconds(3600)

        public init(listen: Endpoint, controller: Endpoint, key: ClusterKey) {
            self.listen = listen
            self.controller = controller
            self.key = key
        }
    }

    public let server: RPCServer
    public let session: ControllerSession
    public let service: MetadataService

    public static func start(_ configuration: Configuration, logger: Logger) async throws -> MetadataServer {
        let service = MetadataService(
            inlineCapacity: configuration.inlineCapacity,
            signer: CapabilitySigner(key: configuration.key, lifetime: configuration.capabilityLifetime), logger: logger
        )
        let server = try await RPCServer.bind(configuration.listen, handler: service, logger: logger)
        let rates = RateMeter(server.counters)
        let cpu = CPUSampler()
        let registration = RegisterServer(
            kind: .metadata, tier: .dram, address: configuration.advertise ?? server.localAddress.description,
            capacityBytes: configuration.inlineCapacity, throughput: 0)
        var settings = ControllerSession.Settings(controller: configuration.controller, registration: registration)
        let signer = service.signer
        settings.prove = { signer.control() }
        let session = ControllerSession(
            settings: settings, logger: logger,
            report: { id in
                var report = service.report(serverID: id)
                let sample = rates.sample()
                report.stats.bytesInPerSecond = sample.bytesIn
                report.stats.bytesOutPerSecond = sample.bytesOut
                report.stats.requestsPerSecond = sample.requests
                report.stats.cpu = cpu.sample()
                return report
            },
            describe: { service.describe(&$0) },
            onRegistered: { service.configure($0) })
        return MetadataServer(server: server, session: session, service: service)
    }

    public var services: [any Service] { [server, session] }
}
