import Foundation
import Logging
import NIOCore
import PocketProtocol
import PocketRPC
import PocketSecurity
import Synchronization

/// The metadata server's request logic. Namespace changes happen under one lock on the event loop;
/// when a change releases blocks, the reply waits until the storage servers have freed them, so
/// space a client freed is free when its call returns. Clients get capabilities for the blocks
/// they may touch; only the controller's signed requests assign, drop or re-place jobs.
public final class MetadataService: RequestHandler {
    let state: Mutex<MetadataState>
    let storage: ConnectionPool
    let signer: CapabilitySigner
    let logger: Logger
    /// Whether a repair of lost copies is running (see `Repair.swift`).
    let repairing = Mutex(false)

    public init(inlineCapacity: UInt64, signer: CapabilitySigner, logger: Logger) {
        state = Mutex(MetadataState(inlineCapacity: inlineCapacity))
        storage = ConnectionPool(timeout: .seconds(5))
        self.signer = signer
        self.logger = logger
    }

    /// Cluster settings, from the controller's answer to registration.
    public func configure(_ reply: RegisterServerReply) {
        state.withLock {
            $0.blockSize = reply.blockSize
            $0.inlineLimit = reply.inlineLimit
        }
    }

    /// What a registration tells the controller: the jobs this server holds and the ended ones whose
    /// persisted objects it keeps, from which a restarted controller rebuilds its registry, and the
    /// storage servers it knows. The jobs' tokens go to the controller only (never to the log).
    public func describe(_ registration: inout RegisterServer) {
        state.withLock { state in
            registration.jobs = state.jobs.map { id, job in
                JobRecord(id: id, name: job.name, token: job.token, hints: job.hints, weightMap: job.placer.weightMap)
            }.sorted { $0.id < $1.id }
            registration.retiredJobs = state.retired.map { RetiredJob(id: $0.value.id, name: $0.key) }
                .sorted { $0.id < $1.id }
            registration.knownServers = state.servers.values.sorted { $0.id < $1.id }
        }
    }

    /// What the heartbeat tells the controller: inline bytes held, jobs, blocks placed per storage
    /// server and bytes per job.
    public func report(serverID: ServerID) -> Heartbeat {
        state.withLock { state in
            var stats = ServerStats()
            stats.usedBytes = state.inlineBytes
            stats.capacityBytes = state.inlineCapacity
            stats.jobCount = UInt32(state.jobs.count)
            return Heartbeat(
                serverID: serverID, stats: stats, placedBytes: state.allocated.filter { $0.value > 0 },
                jobBytes: state.jobs.mapValues { $0.blockBytes + $0.namespace.inlineBytes })
        }
    }

    public func handle(_ request: Frame) -> Reply {
        let now = Self.now()
        switch request.header.opcode {
        case .putInline:
            return releasing(request, PutInline.self, answer: Committed(changed: now)) { state, request in
                // Copy the bytes out of the connection's receive buffer before keeping them.
                var data = ByteBuffer()
                data.writeImmutableBuffer(request.data)
                return try state.putInline(request, data: data, now: now)
            }
        case .getObject:
            return request.serve(GetObject.self) { request in
                var (location, given) = try state.withLock { state throws(PocketError) in
                    (try state.get(request, now: now), state.givenBlocks(request.auth.job))
                }
                // One read capability for every block the job has had: a client keeps just the latest.
                if let given, location.blocks.contains(where: { !$0.isHole }) {
                    location.capability = signer.sign(job: request.auth.job, rights: .read, blocks: given)
                }
                return location
            }
        case .allocateBlocks:
            return request.serve(AllocateBlocks.self) { request in
                let blocks = try state.withLock { try $0.allocate(request.auth, count: request.count) }
                guard let first = blocks.first?.id, let last = blocks.last?.id else { return BlockList(blocks: []) }
                return BlockList(
                    blocks: blocks,
                    capability: signer.sign(job: request.auth.job, rights: [.read, .write], blocks: first...last))
            }
        case .authorizeBlocks:
            return request.serve(AuthorizeBlocks.self) { request in
                let blocks = try state.withLock { try $0.authorizeBlocks(request) }
                return signer.sign(job: request.auth.job, rights: request.rights, blocks: blocks)
            }
        case .commitObject:
            return releasing(request, CommitObject.self, answer: Committed(changed: now)) { state, request in
                try state.commit(request, now: now)
            }
        case .abortBlocks:
            return releasing(request, AbortBlocks.self, answer: Empty()) { state, request in try state.abort(request) }
        case .stat:
            return request.serve(Stat.self) { request in
                try state.withLock { try $0.authorize(request.auth).namespace.resolve(request.path).info }
            }
        case .list:
            return request.serve(List.self) { request in
                EntryList(
                    entries: try state.withLock {
                        try $0.authorize(request.auth).namespace.list(request.path, prefix: request.prefix)
                    })
            }
        case .delete:
            return releasing(request, Delete.self, answer: Empty()) { state, request in
                try state.delete(request, now: now)
            }
        case .rename:
            return releasing(request, Rename.self, answer: Empty()) { state, request in
                try state.rename(request, now: now)
            }
        case .makeDirectory:
            return request.serve(MakeDirectory.self) { request in
                try state.withLock { try $0.makeDirectory(request, now: now) }
                return Empty()
            }
        case .create:
            return request.serve(Create.self) { request in try state.withLock { try $0.create(request, now: now) } }
        case .makeSymlink:
            return request.serve(MakeSymlink.self) { request in
                try state.withLock { try $0.makeSymlink(request, now: now) }
            }
        case .setAttributes:
            return request.serve(SetAttributes.self) { request in
                try state.withLock { try $0.setAttributes(request, now: now) }
            }
        case .getServers:
            return request.serve(GetServers.self) { _ in
                ServerTable(servers: state.withLock { $0.servers.values.sorted { $0.id < $1.id } })
            }
        case .assignJob:
            return request.serve(AssignJob.self) { request in
                try signer.check(request.capability, job: request.jobID, rights: .control)
                state.withLock { $0.assign(request, now: now) }
                logger.info("job assigned", metadata: ["job.name": "\(request.name)", "job.id": "\(request.jobID)"])
                return Empty()
            }
        case .dropJob:
            return request.serveAsync(DropJob.self) { request in
                try self.signer.check(request.capability, job: request.jobID, rights: .control)
                return try await self.dropJob(request.jobID, now: now)
            }
        case .serverTable:
            return request.serve(ServerTable.self) { request in
                guard let capability = request.capability else {
                    throw PocketError(.unauthorized, "a server table needs the controller's capability")
                }
                try signer.check(capability, job: 0, rights: .control)
                let (repair, deliver) = state.withLock { state in
                    let before = state.servers.mapValues(\.state)
                    state.servers = Dictionary(uniqueKeysWithValues: request.servers.map { ($0.id, $0) })
                    // Planning repairs walks every block of every job: only when a server died or
                    // came (a new target for copies), or the last repair left copies to retry —
                    // not at every periodic push of an unchanged table.
                    let changed = before != state.servers.mapValues(\.state)
                    let degraded = state.servers.values.contains { $0.state == .dead }
                    return (degraded && (changed || state.repairUnfinished), state.hasDeliverableFrees)
                }
                if repair { scheduleRepair() }
                if deliver { Task { await self.deliverDeferredFrees() } }
                return Empty()
            }
        case .setWeightMap:
            return request.serve(SetWeightMap.self) { request in
                try signer.check(request.capability, job: request.jobID, rights: .control)
                try state.withLock { state throws(PocketError) in
                    guard state.jobs[request.jobID] != nil else {
                        throw PocketError(.unknownJob, "job \(request.jobID) is not on this server")
                    }
                    state.jobs[request.jobID]!.hints = request.hints
                    state.jobs[request.jobID]!.placer.update(request.weightMap)
                }
                return Empty()
            }
        case .ping:
            return request.serve(Ping.self) { _ in Empty() }
        default:
            return .error(PocketError(.unknownOpcode, "metadata server does not serve opcode \(request.header.opcode)"))
        }
    }

    /// Applies a change that may release blocks; replies once they are freed.
    private func releasing<R: JobRequest>(
        _ frame: Frame, _: R.Type, answer: R.Response, _ change: (inout MetadataState, R) throws -> [BlockRef]
    ) -> Reply {
        do {
            let request = try frame.decode(R.self)
            let jobID = request.auth.job
            let released = try state.withLock { try change(&$0, request) }
            if released.isEmpty { return .message(answer) }
            return .later {
                _ = await self.free(released, of: jobID)
                return .message(answer)
            }
        } catch {
            return .error(PocketError(wrapping: error))
        }
    }

    private func dropJob(_ jobID: JobID, now: Int64) async throws -> DropJobReply {
        guard let (released, kept) = state.withLock({ $0.drop(jobID, now: now) }) else {
            throw PocketError(.unknownJob, "job \(jobID) is not on this server")
        }
        let freed: FreeReply
        if kept == 0 {
            // Nothing survives: drop the job wholesale on every server, which also catches blocks a
            // client wrote but never committed nor allocated through us.
            freed = await freeJobEverywhere(jobID)
        } else {
            freed = await free(released, of: jobID)
        }
        logger.info(
            "job dropped",
            metadata: ["job.id": "\(jobID)", "freed.blocks": "\(freed.blocks)", "kept.objects": "\(kept)"])
        return DropJobReply(freed: freed, persistedObjects: UInt64(kept))
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
