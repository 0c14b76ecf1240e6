import Logging
import NIOCore
import PocketProtocol
import PocketRPC
import PocketSecurity
import ServiceLifecycle
import Synchronization

/// The controller: answers servers and clients, keeps the metadata servers' view of the storage
/// servers current and, with a provisioner, sizes the cluster. Its `run` loops expire silent
/// servers, push server tables and weight maps, and carry out the autoscaler's directives.
public final class ControllerService: RequestHandler, Service {
    /// Starting and stopping servers: the provisioner, each pool's limits, and whether the
    /// autoscaler runs (without it the provisioner only starts servers jobs' allocations need).
    public struct Scaling: Sendable {
        public var provisioner: any Provisioner
        public var autoscaler = Autoscaler.Settings()
        public var autoscale = false

        public init(provisioner: any Provisioner) {
            self.provisioner = provisioner
        }
    }

    let state: Mutex<ControllerState>
    private let metadata = ConnectionPool(timeout: .seconds(5))
    let logger: Logger
    /// Set when the storage table or a weight map changed and metadata servers have not been told.
    let tableDirty = Atomic<Bool>(true)
    let scaling: Scaling?
    let autoscaler: Mutex<Autoscaler>
    /// Placements that may launch servers run one at a time, so two jobs do not both launch for
    /// the same shortfall.
    private let placements = SerialQueue()
    /// Signs what the controller asks of metadata servers.
    let signer: CapabilitySigner

    public init(
        settings: ControllerState.Settings = .init(), scaling: Scaling? = nil, key: ClusterKey, logger: Logger
    ) {
        state = Mutex(ControllerState(settings: settings))
        signer = CapabilitySigner(key: key)
        self.scaling = scaling
        autoscaler = Mutex(Autoscaler(settings: scaling?.autoscaler ?? .init()))
        self.logger = logger
    }

    public func handle(_ request: Frame) -> Reply {
        let now = ContinuousClock.now
        switch request.header.opcode {
        case .registerServer:
            return request.serve(RegisterServer.self) { request in
                try checkMember(request.proof)
                let registration = try state.withLock { state throws(PocketError) in
                    try state.register(request, now: now)
                }
                logger.info(
                    "server registered",
                    metadata: [
                        "server.id": "\(registration.reply.serverID)", "server.kind": "\(request.kind)",
                        "server.address": "\(request.address)", "server.tier": "\(request.tier)",
                        "server.previous-id": "\(request.previousID)",
                    ])
                // Names and ids only: the report carries the jobs' tokens.
                for job in registration.recovered {
                    logger.info(
                        "job taken back from its metadata server",
                        metadata: [
                            "job.name": "\(job.name)", "job.id": "\(job.id)",
                            "job.allocation": "\(job.allocation.summary)",
                            "server.id": "\(registration.reply.serverID)",
                        ])
                }
                for (name, reason) in registration.refused.sorted(by: { $0.key < $1.key }) {
                    logger.warning(
                        "job reported by a metadata server not taken back: \(reason)",
                        metadata: ["job.name": "\(name)", "server.id": "\(registration.reply.serverID)"])
                }
                tableDirty.store(true, ordering: .releasing)
                return registration.reply
            }
        case .heartbeat:
            return request.serve(Heartbeat.self) { request in
                try checkMember(request.proof)
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
            return request.serveAsync(LookupJob.self) { request in
                await self.recovered()
                return try self.state.withLock { try $0.grant(for: $0.authorize(request.job)) }
            }
        case .listJobs:
            return request.serve(ListJobs.self) { _ in JobList(jobs: state.withLock { $0.status.jobs }) }
        case .clusterStatus:
            return request.serve(ClusterStatusRequest.self) { _ in state.withLock { $0.status } }
        case .updateHints:
            return request.serveAsync(UpdateHints.self) { request in try await self.updateHints(request) }
        case .listEvents:
            return request.serve(ListEvents.self) { request in
                EventList(events: state.withLock { $0.events.filter { $0.time >= request.since } })
            }
        case .ping:
            return request.serve(Ping.self) { _ in Empty() }
        default:
            return .error(PocketError(.unknownOpcode, "controller does not serve opcode \(request.header.opcode)"))
        }
    }

    /// Returns once the recovery grace period is over. Job calls wait for it: by then every live
    /// metadata server has reported its jobs, so a new job cannot take a running one's name and a
    /// running one is found. Without a grace period (a new cluster) it returns at once.
    func recovered() async {
        let end = state.withLock { $0.recoveryEnds }
        if end > .now { try? await Task.sleep(until: end, clock: .continuous) }
    }

    private func registerJob(_ request: RegisterJob) async throws -> JobGrant {
        await recovered()
        let (newID, token) = (Secrets.jobID(), Secrets.token())
        let job = try await placing { state, room throws(PocketError) in
            try state.admit(name: request.name, hints: request.hints, newID: newID, token: token, room: room)
        }
        do {
            // The metadata server gets the storage table first, so the job's first allocation
            // already knows every server of its weight map.
            try await metadataCall(job.info.metadataAddress, signedTable(state.withLock { $0.storageTable }))
            try await metadataCall(
                job.info.metadataAddress,
                AssignJob(
                    capability: signer.control(job: job.info.id), jobID: job.info.id, name: job.info.name,
                    token: job.token, hints: job.info.hints, weightMap: job.info.weightMap))
        } catch {
            state.withLock { $0.forget(request.name) }
            throw PocketError(
                .unavailable, "metadata server \(job.info.metadataAddress) did not take the job: \(error)")
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
        await recovered()
        let job = try state.withLock { try $0.authorize(credentials) }
        let reply = try await metadataCall(
            job.info.metadataAddress, DropJob(capability: signer.control(job: job.info.id), jobID: job.info.id))
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
        await recovered()
        _ = try state.withLock { try $0.authorize(request.job) }
        let job = try await placing { state, room throws(PocketError) in
            try state.updateHints(request.job.name, request.hints, room: room)
        }
        logger.info(
            "job hints changed",
            metadata: ["job.name": "\(job.info.name)", "job.allocation": "\(job.info.allocation.summary)"])
        try await metadataCall(job.info.metadataAddress, weightMapUpdate(job.info))
        return job.info
    }

    /// Places a job, starting storage servers first when the provisioner can and the job needs them.
    private func placing(
        _ attempt:
            @escaping @Sendable (inout ControllerState, ProvisioningRoom?) throws(PocketError) ->
            ControllerState.Outcome
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
                    await launchForPlacement(tier: tier, count: count)
                }
            }
        }
    }

    private func provisioningRoom() -> ProvisioningRoom? {
        guard let scaling else { return nil }
        return state.withLock { state in
            var tiers: [Tier: (throughput: UInt64, capacity: UInt64, servers: Int)] = [:]
            for (tier, shape) in scaling.provisioner.storageShapes {
                let limit = scaling.autoscaler.limits[.storage(tier)]?.upperBound ?? 0
                let coming = state.launching[.storage(tier)]?.count ?? 0
                tiers[tier] = (shape.throughput, shape.capacity, limit - state.count(.storage(tier)) - coming)
            }
            return ProvisioningRoom(tiers)
        }
    }

    /// Starts servers a job's allocation needs and waits (up to 10 s) until they have registered.
    private func launchForPlacement(tier: Tier, count: Int) async {
        let pool = Pool.storage(tier)
        let before = state.withLock { $0.count(pool) }
        await launch(pool, count: count, forLoad: false, utilisation: 0, reason: "a job's allocation does not fit")
        let deadline = ContinuousClock.now + .seconds(10)
        while state.withLock({ $0.count(pool) < before + count && !($0.launching[pool] ?? []).isEmpty }),
            ContinuousClock.now < deadline
        {
            try? await Task.sleep(for: .milliseconds(10))
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
                if self.scaling != nil { group.addTask { await self.scalingLoop() } }
            }
        }
        await metadata.closeAll()
        await scaling?.provisioner.shutdown()
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
    /// seconds so a restarted metadata server catches up; then the weight maps that changed (jobs
    /// placed again after a drain, a new server's share, maps that lost every server). Nothing is
    /// pushed during the recovery grace period: the metadata servers keep the table the last
    /// controller gave them until this one has heard from every server still running.
    private func pushLoop() async {
        var lastPush = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            guard !state.withLock({ $0.isRecovering(now: .now) }) else { continue }
            let changed = tableDirty.exchange(false, ordering: .acquiring)
            guard changed || ContinuousClock.now - lastPush >= .seconds(2) else { continue }
            lastPush = .now
            let (table, metadataServers, repaired) = state.withLock { state in
                _ = state.repairWeightMaps()
                let serving = state.servers.values.map(\.info).filter { $0.kind == .metadata && $0.state != .dead }
                return (signedTable(state.storageTable), serving, state.takeChangedJobs())
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
                _ = try? await metadataCall(job.info.metadataAddress, weightMapUpdate(job.info))
            }
        }
    }
}

extension ControllerService {
    /// Servers prove they hold the cluster key: otherwise anyone reaching this port could register
    /// a storage server, be given jobs' blocks, or report jobs (with their tokens) as a metadata server.
    func checkMember(_ proof: Capability?) throws(PocketError) {
        guard let proof else { throw PocketError(.unauthorized, "a server must prove it holds the cluster key") }
        try signer.check(proof, job: 0, rights: .control)
    }

    func signedTable(_ table: ServerTable) -> ServerTable {
        var table = table
        table.capability = signer.control()
        return table
    }

    func weightMapUpdate(_ job: JobInfo) -> SetWeightMap {
        SetWeightMap(capability: signer.control(job: job.id), jobID: job.id, hints: job.hints, weightMap: job.weightMap)
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
