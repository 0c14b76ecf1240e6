import Logging
import NIOCore
import NIOPosix
import PocketProtocol
import PocketRPC
import PocketSecurity
import ServiceLifecycle

/// Serves block reads and writes from one store, each only with a capability a metadata server
/// signed for those blocks. Stores that block on I/O (the file tiers) run their operations on a
/// thread pool, never on an event loop.
public struct StorageRequestHandler: RequestHandler {
    let store: any BlockStore
    let io: NIOThreadPool?
    let signer: CapabilitySigner
    let stats: @Sendable () -> ServerStats

    public init(
        store: any BlockStore, io: NIOThreadPool? = nil, signer: CapabilitySigner,
        stats: @escaping @Sendable () -> ServerStats
    ) {
        self.store = store
        self.io = io
        self.signer = signer
        self.stats = stats
    }

    public func handle(_ request: Frame) -> Reply {
        let signer = self.signer
        switch request.header.opcode {
        case .writeBlocks:
            return blockStoreCall(request, WriteBlocks.self) { store, request in
                try signer.check(
                    request.capabilities, covering: request.blocks.lazy.map(\.id), job: request.jobID, rights: .write)
                try store.write(job: request.jobID, blocks: request.blocks)
                return Empty()
            }
        case .readBlocks:
            return blockStoreCall(request, ReadBlocks.self) { store, request in
                try signer.check(
                    request.capabilities, covering: request.ranges.lazy.map(\.id), job: request.jobID, rights: .read)
                return BlockData(blocks: try store.read(job: request.jobID, ranges: request.ranges))
            }
        case .freeBlocks:
            return blockStoreCall(request, FreeBlocks.self) { store, request in
                try signer.check([request.capability], covering: request.ids, job: request.jobID, rights: .free)
                return store.free(job: request.jobID, ids: request.ids)
            }
        case .freeJob:
            return blockStoreCall(request, FreeJob.self) { store, request in
                try signer.check(request.capability, job: request.jobID, rights: .free)
                return store.freeJob(request.jobID)
            }
        case .storageStats:
            return request.serve(StorageStats.self) { _ in stats() }
        case .ping:
            return request.serve(Ping.self) { _ in Empty() }
        default:
            return .error(PocketError(.unknownOpcode, "storage server does not serve opcode \(request.header.opcode)"))
        }
    }

    private func blockStoreCall<R: WireRequest>(
        _ frame: Frame, _: R.Type, _ body: @escaping @Sendable (any BlockStore, R) throws -> R.Response
    ) -> Reply {
        let store = self.store
        guard store.blocksOnIO, let io else { return frame.serve(R.self) { try body(store, $0) } }
        return frame.serveAsync(R.self) { request in try await io.runIfActive { try body(store, request) } }
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
        /// Declared throughput, bytes per second.
        public var throughput: UInt64 = 1_000_000_000
        public var key: ClusterKey

        public init(listen: Endpoint, controller: Endpoint, capacityBytes: UInt64, key: ClusterKey) {
            self.listen = listen
            self.controller = controller
            self.capacityBytes = capacityBytes
            self.key = key
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
        let io: NIOThreadPool? = store.blocksOnIO ? NIOThreadPool(numberOfThreads: 4) : nil
        io?.start()
        let signer = CapabilitySigner(key: configuration.key)
        let handler = StorageRequestHandler(store: store, io: io, signer: signer) { holder.current(store: store) }
        let server = try await RPCServer.bind(configuration.listen, handler: handler, logger: logger)
        holder.attach(server: server, cpu: cpu)
        let registration = RegisterServer(
            kind: .storage, tier: store.tier, address: configuration.advertise ?? server.localAddress.description,
            capacityBytes: store.capacityBytes, throughput: configuration.throughput)
        var settings = ControllerSession.Settings(controller: configuration.controller, registration: registration)
        settings.prove = { signer.control() }
        let session = ControllerSession(
            settings: settings, logger: logger
        ) { Heartbeat(serverID: $0, stats: holder.sample(store: store)) }
        return StorageServer(server: server, session: session)
    }

    public var services: [any Service] { [server, session] }
}
