import NIOCore
import NIOPosix
import PocketProtocol
import PocketRPC

/// The native client: registers jobs with the controller and opens them for reading and writing.
///
///     let client = PocketClient(controller: try Endpoint(parsing: "127.0.0.1:7070"))
///     let job = try await client.registerJob("sort", hints: JobHints(maxLambdas: 100))
///     try await job.put("shuffle/part-0", bytes)
///     let back = try await job.get("shuffle/part-0")
///     try await client.deregisterJob(job)
public final class PocketClient: Sendable {
    public struct Configuration: Sendable {
        /// Blocks per storage request.
        public var batchBlocks = 16
        /// Storage requests in flight for one object.
        public var maxInFlight = 16
        /// Most blocks reserved per allocation while streaming an object of unknown size (each
        /// allocation reserves as many as the object used so far, up to this).
        public var allocationChunk: UInt32 = 256
        /// How long a request may go unanswered before it fails.
        public var timeout: TimeAmount = .seconds(10)
        /// Connections per storage server, to spread large transfers over event loops.
        public var connectionsPerStorageServer = 2
        /// Connections to the job's metadata server: a caller on an event loop uses that loop's,
        /// so many concurrent callers keep both loops busy and one caller never changes threads.
        public var connectionsPerMetadataServer = 2
        /// TLS for every connection the client opens (default: the process's, see `TransportSecurity`).
        public var security: TransportSecurity = .process
        public init() {}
    }

    public static let defaultController = "127.0.0.1:7070"

    public let controller: Endpoint
    let configuration: Configuration
    let controllerConnections: ConnectionPool
    let metadataConnections: ConnectionPool
    let storageConnections: ConnectionPool

    public init(controller: Endpoint, configuration: Configuration = .init()) {
        self.controller = controller
        self.configuration = configuration
        controllerConnections = ConnectionPool(timeout: configuration.timeout, security: configuration.security)
        metadataConnections = ConnectionPool(
            width: configuration.connectionsPerMetadataServer, followingCallers: true, timeout: configuration.timeout,
            security: configuration.security)
        storageConnections = ConnectionPool(
            width: configuration.connectionsPerStorageServer, timeout: configuration.timeout,
            security: configuration.security)
    }

    /// Calls the controller.
    public func call<R: WireRequest>(_ request: R) async throws -> R.Response {
        try await controllerConnections.call(controller, request)
    }

    public func registerJob(_ name: String, hints: JobHints = JobHints()) async throws -> PocketJob {
        let grant = try await call(RegisterJob(name: name, hints: hints))
        return try PocketJob(client: self, name: name, grant: grant)
    }

    /// Opens a job registered earlier, proving it with its token.
    public func openJob(_ name: String, token: String) async throws -> PocketJob {
        let grant = try await call(LookupJob(job: JobCredentials(name: name, token: token)))
        return try PocketJob(client: self, name: name, grant: grant)
    }

    public func deregisterJob(_ name: String, token: String) async throws {
        _ = try await call(DeregisterJob(job: JobCredentials(name: name, token: token)))
    }

    public func deregisterJob(_ job: PocketJob) async throws {
        try await deregisterJob(job.name, token: job.token)
    }

    public func updateHints(_ name: String, token: String, hints: JobHints) async throws -> JobInfo {
        try await call(UpdateHints(job: JobCredentials(name: name, token: token), hints: hints))
    }

    public func listJobs() async throws -> [JobInfo] {
        try await call(ListJobs()).jobs
    }

    public func status() async throws -> ClusterStatus {
        try await call(ClusterStatusRequest())
    }

    public func close() async {
        await controllerConnections.closeAll()
        await metadataConnections.closeAll()
        await storageConnections.closeAll()
    }
}
