import Logging
import NIOCore
import PocketProtocol
import PocketRPC

/// Frees a storage server could not take — it was dead, or did not answer in time — kept until
/// the controller's table shows it live again (a partition healed), dropped once it leaves the
/// table. Without them, blocks deleted while a server was cut off would stay on it for good.
struct UndeliveredFrees: Sendable {
    var blocks: [JobID: Set<BlockID>] = [:]
    /// Jobs ended meanwhile: every block of theirs goes.
    var jobs: Set<JobID> = []

    var isEmpty: Bool { blocks.isEmpty && jobs.isEmpty }
}

extension MetadataState {
    mutating func deferFree(_ ids: [BlockID], of job: JobID, on server: ServerID) {
        guard !(undelivered[server]?.jobs.contains(job) ?? false) else { return }
        undelivered[server, default: UndeliveredFrees()].blocks[job, default: []].formUnion(ids)
    }

    mutating func deferFreeJob(_ job: JobID, on server: ServerID) {
        undelivered[server, default: UndeliveredFrees()].jobs.insert(job)
        undelivered[server]!.blocks.removeValue(forKey: job)
    }

    /// Whether a server that missed frees is live in the table again.
    var hasDeliverableFrees: Bool {
        undelivered.keys.contains { id in servers[id]?.state != .dead }
    }

    /// The frees now deliverable: those of servers live in the table. Those of servers gone from
    /// it are dropped (their blocks went with them).
    mutating func takeDeliverableFrees() -> [(StorageServerEntry, UndeliveredFrees)] {
        undelivered = undelivered.filter { servers[$0.key] != nil }
        let ready = undelivered.compactMap { id, frees -> (StorageServerEntry, UndeliveredFrees)? in
            guard let server = servers[id], server.state != .dead else { return nil }
            return (server, frees)
        }
        for (server, _) in ready { undelivered.removeValue(forKey: server.id) }
        return ready
    }
}

extension MetadataService {
    /// Waits this long for a server to free blocks before deferring the free: a client's delete
    /// is not held up by a server that is cut off.
    static let freeTimeout = TimeAmount.seconds(1)

    /// Frees blocks (every copy) on their servers, one batched request per server, all at once.
    func free(_ blocks: [BlockRef], of job: JobID) async -> FreeReply {
        var byServer: [ServerID: [BlockID]] = [:]
        for block in blocks {
            for server in block.servers { byServer[server, default: []].append(block.id) }
        }
        let servers = state.withLock { state in
            byServer.keys.compactMap { id -> StorageServerEntry? in
                guard let server = state.servers[id] else { return nil }
                if server.state == .dead { state.deferFree(byServer[id]!, of: job, on: id) }
                return server.state == .dead ? nil : server
            }
        }
        return await withTaskGroup(of: FreeReply.self) { group in
            for server in servers {
                let ids = byServer[server.id]!
                group.addTask { await self.freeBlocks(ids, of: job, on: server) }
            }
            return await group.reduce(FreeReply(blocks: 0, bytes: 0), +)
        }
    }

    /// Frees every block of a job on every server.
    func freeJobEverywhere(_ job: JobID) async -> FreeReply {
        let servers = state.withLock { state in
            state.servers.values.filter { server in
                if server.state == .dead { state.deferFreeJob(job, on: server.id) }
                return server.state != .dead
            }
        }
        return await withTaskGroup(of: FreeReply.self) { group in
            for server in servers { group.addTask { await self.freeJob(job, on: server) } }
            return await group.reduce(FreeReply(blocks: 0, bytes: 0), +)
        }
    }

    /// Sends the frees servers missed, now that they are live again.
    func deliverDeferredFrees() async {
        let ready = state.withLock { $0.takeDeliverableFrees() }
        guard !ready.isEmpty else { return }
        var freed = FreeReply(blocks: 0, bytes: 0)
        for (server, frees) in ready {
            for job in frees.jobs { freed = freed + (await freeJob(job, on: server)) }
            for (job, ids) in frees.blocks { freed = freed + (await freeBlocks(Array(ids), of: job, on: server)) }
        }
        logger.info(
            "delivered frees a storage server missed",
            metadata: ["servers": "\(ready.map(\.0.id))", "freed.blocks": "\(freed.blocks)"])
    }

    private func freeBlocks(_ ids: [BlockID], of job: JobID, on server: StorageServerEntry) async -> FreeReply {
        let capability = signer.sign(job: job, rights: .free, blocks: ids.min()!...ids.max()!, lifetime: .seconds(60))
        return await call(server, FreeBlocks(jobID: job, capability: capability, ids: ids)) { state in
            state.deferFree(ids, of: job, on: server.id)
        }
    }

    private func freeJob(_ job: JobID, on server: StorageServerEntry) async -> FreeReply {
        let capability = signer.sign(job: job, rights: .free, blocks: Capability.everyBlock, lifetime: .seconds(60))
        return await call(server, FreeJob(jobID: job, capability: capability)) { state in
            state.deferFreeJob(job, on: server.id)
        }
    }

    private func call<R: WireRequest>(
        _ server: StorageServerEntry, _ request: R, deferring: (inout MetadataState) -> Void
    ) async -> FreeReply where R.Response == FreeReply {
        do {
            return try await storage.call(Endpoint(parsing: server.address), request, timeout: Self.freeTimeout)
        } catch {
            logger.warning(
                "could not free blocks on storage server \(server.id) (\(server.address)), will retry: \(error)")
            state.withLock { deferring(&$0) }
            return FreeReply(blocks: 0, bytes: 0)
        }
    }
}

extension FreeReply {
    static func + (lhs: FreeReply, rhs: FreeReply) -> FreeReply {
        FreeReply(blocks: lhs.blocks + rhs.blocks, bytes: lhs.bytes + rhs.bytes)
    }
}
