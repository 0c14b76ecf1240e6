import Logging
import NIOCore
import PocketProtocol
import PocketRPC
import ServiceLifecycle
import Synchronization

/// The controller: answers servers and clients, and keeps the metadata servers' view of the storage
/// servers current. Its `run` loop expires silent servers and pushes server tables.
public final class ControllerService: RequestHandler, Service {
    private let state: Mutex<ControllerState>
    private let metadata = ConnectionPool(timeout: .seconds(5))
    private let logger: Logger
    /// Set when the storage table changed and metadata servers have not been told yet.
    private let tableDirty = Atomic<Bool>(true)
    private let provisioner: (any StorageProvisioner)?
    /// Placements that may launch servers run one at a time, so two jobs do not both launch for
    /// the same shortfall.
    private let placements = SerialQueue()

    public init(
        settings: ControllerState.Settings = .init(), provisioner: (any StorageProvisioner)? = nil, logger: Logger
    ) {
        state = Mutex(ControllerState(settings: settings))
        self.provisioner = provisioner
        self.logger = logger
    }

    public func handle(_ request: Frame) -> Reply {
        let now = ContinuousClock.now
        switch request.header.opcode {
        case .registerServer:
            return request.serve(RegisterServer.self) { request in
                let reply = state.withLock { $0.register(request, now: now) }
                logger.info(
                    "server registered",
                    metadata: [
                        "server.id": "\(reply.serverID)", "server.kind": "\(request.kind)",
                        "server.address": "\(request.address)", "server.tier": "\(request.tier)",
                    ])
                tableDirty.store(true, ordering: .releasing)
                return reply
            }
        case .heartbeat:
            return request.serve(Heartbeat.self) { request in
                if try state.withLock({ try $0.heartbeat(request, now: now) }) {
                    logger.info("server is back", metadata: ["server.id": "\(request.serverID)"])
                    tableDirty.store(true, ordering: .releasing)
                }
                return Empty()
            }
        case .registerJob:
            return request.serveAsync(RegisterJob.self) { request in try await self.registerJob(request) }
        case .deregisterJob:
            return request.serveAsync(DeregisterJob.self) { request in try await self.deregisterJob(request.job) }
        case .lookupJob:
            return request.serve(LookupJob.self) { request in
                try state.withLock { try $0.grant(for: $0.authorize(request.job)) }
            }
        case .listJobs:
            return request.serve(ListJobs.self) { _ in JobList(jobs: state.withLock { $0.status.jobs }) }
        case .clusterStatus:
            return request.serve(ClusterStatusRequest.self) { _ in state.withLock { $0.status } }
        case .updateHints:
            return request.serveAsync(UpdateHints.self) { request in try await self.updateHints(request) }
        case .ping:
            return request.serve(Ping.self) { _ in Empty() }
        default:
            return .error(PocketError(.unknownOpcode, "controller does not serve opcode \(request.header.opcode)"))
        }
    }

    private func registerJob(_ request: RegisterJob) async throws -> JobGrant {
        let (newID, token) = (Secrets.jobID(), Secrets.token())
        let job = try await placing { state, room throws(PocketError) in
            try state.admit(name: request.name, hints: request.hints, newID: newID, token: token, room: room)
        }
        do {
            // The metadata server gets the storage table first, so the job's first allocation
            // already knows every server of its weight map.
            try await metadataCall(job.info.metadataAddress, state.withLock { $0.storageTable })
            try await metadataCall(
                job.info.metadataAddress,
                AssignJob(jobID: job.info.id, name: job.info.name, token: job.token, weightMap: job.info.weightMap))
        } catch {
            state.withLock { $0.forget(request.name) }
            throw PocketError(.unavailable, "metadata server \(job.info.metadataAddress) did not take the job: \(error)")
        }
        logger.info(
            "job registered",
            metadata: [
                "job.name": "\(job.info.name)", "job.id": "\(job.info.id)",
                "job.allocation": "\(job.info.allocation.summary)",
            ])
        return state.withLock { $0.grant(for: job) }
    }

    private func deregisterJob(_ credentials: JobCredentials) async throws -> Empty {
        let job = try state.withLock { try $0.authorize(credentials) }
        let reply = try await metadataCall(job.info.metadataAddress, DropJob(jobID: job.info.id))
        state.withLock { $0.remove(credentials.name, persisted: reply.persistedObjects > 0) }
        logger.info(
            "job deregistered",
            metadata: [
                "job.name": "\(credentials.name)", "freed.bytes": "\(reply.freed.bytes)",
                "kept.objects": "\(reply.persistedObjects)",
            ])
        return Empty()
    }

    private func updateHints(_ request: UpdateHints) async throws -> JobInfo {
        _ = try state.withLock { try $0.authorize(request.job) }
        let job = try await placing { state, room throws(PocketError) in
            try state.updateHints(request.job.name, request.hints, room: room)
        }
        logger.info(
            "job hints changed",
            metadata: ["job.name": "\(job.info.name)", "job.allocation": "\(job.info.allocation.summary)"])
        try await metadataCall(
            job.info.metadataAddress, SetWeightMap(jobID: job.info.id, weightMap: job.info.weightMap))
        return job.info
    }

    /// Places a job, starting storage servers first when the provisioner can and the job needs them.
    private func placing(
        _ attempt: @escaping @Sendable (inout ControllerState, ProvisioningRoom?) throws(PocketError) -> ControllerState.Outcome
    ) async throws -> ControllerState.Job {
        try await placements.run {
            var room = provisioningRoom()
            while true {
                let outcome = try state.withLock { state throws(PocketError) in try attempt(&state, room) }
                switch outcome {
                case .placed(let job):
                    return job
                case .launch(let tier, let count):
                    room = nil  // one launch per placement; then the job takes what there is
                    await launch(tier: tier, count: count)
                }
            }
        }
    }

    private func provisioningRoom() -> ProvisioningRoom? {
        guard let provisioner else { return nil }
        let count = state.withLock { $0.storageServerCount }
        return ProvisioningRoom(shapes: provisioner.shapes, servers: provisioner.maxServers - count)
    }

    /// Starts servers and waits (up to 10 s) until they have registered.
    private func launch(tier: Tier, count: Int) async {
        guard let provisioner else { return }
        let before = state.withLock { $0.activeServers(.storage).filter { $0.tier == tier }.count }
        logger.info("starting storage servers", metadata: ["tier": "\(tier)", "count": "\(count)"])
        do {
            try await provisioner.launch(tier: tier, count: count)
            let deadline = ContinuousClock.now + .seconds(10)
            while state.withLock({ $0.activeServers(.storage).filter { $0.tier == tier }.count }) < before + count {
                guard ContinuousClock.now < deadline else {
                    throw PocketError(.timedOut, "new servers did not register within 10 s")
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        } catch {
            logger.warning("could not start storage servers: \(error)", metadata: ["tier": "\(tier)"])
        }
    }

    @discardableResult
    private func metadataCall<R: WireRequest>(_ address: String, _ request: R) async throws -> R.Response {
        try await metadata.call(try Endpoint(parsing: address), request)
    }

    // MARK: Background work

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.expireLoop() }
                group.addTask { await self.pushLoop() }
            }
        }
        await metadata.closeAll()
        await provisioner?.shutdown()
    }

    private func expireLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let died = state.withLock { $0.expire(now: .now) }
            if !died.isEmpty {
                logger.warning("servers stopped reporting", metadata: ["server.ids": "\(died)"])
                tableDirty.store(true, ordering: .releasing)
            }
        }
    }

    /// Sends the storage table to every live metadata server soon after it changes, and every few
    /// seconds so a restarted metadata server catches up; also repairs weight maps that lost every
    /// server.
    private func pushLoop() async {
        var lastPush = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            let changed = tableDirty.exchange(false, ordering: .acquiring)
            guard changed || ContinuousClock.now - lastPush >= .seconds(2) else { continue }
            lastPush = .now
            let (table, metadataServers, repaired) = state.withLock {
                ($0.storageTable, $0.activeServers(.metadata), $0.repairWeightMaps())
            }
            await withDiscardingTaskGroup { group in
                for server in metadataServers {
                    group.addTask {
                        do {
                            try await self.metadataCall(server.address, table)
                        } catch {
                            self.logger.debug("server table push to \(server.address) failed: \(error)")
                        }
                    }
                }
            }
            for job in repaired {
                _ = try? await metadataCall(
                    job.info.metadataAddress, SetWeightMap(jobID: job.info.id, weightMap: job.info.weightMap))
            }
        }
    }
}

enum Secrets {
    static func jobID() -> JobID {
        var generator = SystemRandomNumberGenerator()
        return JobID.random(in: 1...(.max >> 1), using: &generator)
    }

    /// 128 random bits, hex.
    static func token() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
        }.joined()
    }
}
