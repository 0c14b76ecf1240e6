import Logging
import NIOCore
import PocketProtocol
import PocketRPC
import ServiceLifecycle

/// Serves block reads and writes from one store.
public struct StorageRequestHandler: RequestHandler {
    let store: any BlockStore
    let stats: @Sendable () -> ServerStats

    public init(store: any BlockStore, stats: @escaping @Sendable () -> ServerStats) {
        self.store = store
        self.stats = stats
    }

    public func handle(_ request: Frame) -> Reply {
        switch request.header.opcode {
        case .writeBlocks:
            request.serve(WriteBlocks.self) { request in
                try store.write(job: request.jobID, blocks: request.blocks)
                return Empty()
            }
        case .readBlocks:
            request.serve(ReadBlocks.self) { request in
                BlockData(blocks: try store.read(job: request.jobID, ranges: request.ranges))
            }
        case .freeBlocks:
            request.serve(FreeBlocks.self) { store.free(job: $0.jobID, ids: $0.ids) }
        case .freeJob:
            request.serve(FreeJob.self) { store.freeJob($0.jobID) }
        case .storageStats:
            request.serve(StorageStats.self) { _ in stats() }
        case .ping:
            request.serve(Ping.self) { _ in Empty() }
        default:
            .error(PocketError(.unknownOpcode, "storage server does not serve opcode \(request.header.opcode)"))
        }
    }
}

/// A storage daemon: the block server plus its membership in the cluster.
public struct StorageServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: Endpoint
        public var controller: Endpoint
        /// The address clients use; defaults to the bound listen address.
        public var advertise: String?
        public var capacityBytes: UInt64
        /// Declared network throughput, bytes per second (8 Gb/s, the paper's node).
        public var throughput: UInt64 = 1_000_000_000

        public init(listen: Endpoint, controller: Endpoint, capacityBytes: UInt64) {
            self.listen = listen
            self.controller = controller
            self.capacityBytes = capacityBytes
        }
    }

    public let server: RPCServer
    public let session: ControllerSession

    /// Binds the port and prepares the controller session; `services` run them.
    public static func start(
        _ configuration: Configuration, store: any BlockStore, logger: Logger
    ) async throws -> StorageServer {
        let cpu = CPUSampler()
        let holder = StatsHolder()
        let handler = StorageRequestHandler(store: store) { holder.current(store: store) }
        let server = try await RPCServer.bind(configuration.listen, handler: handler, logger: logger)
        holder.attach(server: server, cpu: cpu)
        let registration = RegisterServer(
            kind: .storage, tier: store.tier, address: configuration.advertise ?? server.localAddress.description,
            capacityBytes: store.capacityBytes, throughput: configuration.throughput)
        let session = ControllerSession(
            settings: .init(controller: configuration.controller, registration: registration), logger: logger
        ) { holder.sample(store: store) }
        return StorageServer(server: server, session: session)
    }

    public var services: [any Service] { [server, session] }
}
