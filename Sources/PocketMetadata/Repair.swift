import Logging
import NIOCore
import PocketProtocol
import PocketRPC

/// A copy to make: block `block` of `job`, read from one of `sources`, written to `target`,
/// replacing the copy on the dead server `lost`.
struct RepairTask: Sendable {
    var job: JobID
    var block: BlockID
    var sources: [StorageServerEntry]
    var lost: ServerID
    var target: StorageServerEntry

    /// Which block of which job: a block is copied by one task at a time.
    struct Key: Hashable, Sendable {
        var job: JobID
        var block: BlockID
    }

    var key: Key { Key(job: job, block: block) }
}

extension MetadataState {
    /// Up to `limit` copies lost with dead servers that a surviving copy can restore, each with a
    /// live server of the same tier that holds no copy yet (its room reserved here). Blocks with no
    /// live copy left cannot be restored; readers get an I/O error for them.
    mutating func planRepairs(limit: Int) -> [RepairTask] {
        repairUnfinished = false
        let blockSize = UInt64(blockSize)
        var tasks: [RepairTask] = []
        for (jobID, job) in jobs where tasks.count < limit {
            for block in job.namespace.allBlocks where !block.isHole && tasks.count < limit {
                guard !copying.contains(RepairTask.Key(job: jobID, block: block.id)) else { continue }
                let holders = block.servers
                guard let lost = holders.first(where: { servers[$0]?.state == .dead }) else { continue }
                let sources = holders.compactMap { servers[$0] }.filter { $0.state != .dead }
                guard !sources.isEmpty,
                    let target = spareServers(like: sources[0].id, excluding: holders, planned: allocated).first
                else { continue }
                allocated[target, default: 0] += blockSize
                let task = RepairTask(
                    job: jobID, block: block.id, sources: sources, lost: lost, target: servers[target]!)
                copying.insert(task.key)
                tasks.append(task)
            }
        }
        return tasks
    }

    /// Records the copies made: the files now name the new servers. A copy whose block was freed
    /// or moved meanwhile is returned, to be freed on its target.
    mutating func finishRepairs(made: [RepairTask], failed: [RepairTask]) -> [RepairTask] {
        let blockSize = UInt64(blockSize)
        for task in made + failed { copying.remove(task.key) }
        if !failed.isEmpty { repairUnfinished = true }
        for task in failed {
            allocated[task.target.id, default: 0] -= min(blockSize, allocated[task.target.id, default: 0])
        }
        var orphans: [RepairTask] = []
        for (jobID, tasks) in Dictionary(grouping: made, by: \.job) {
            guard jobs[jobID] != nil else {
                orphans += tasks
                continue
            }
            let moves = Dictionary(tasks.map { ($0.block, (from: $0.lost, to: $0.target.id)) }) { first, _ in first }
            let moved = jobs[jobID]!.namespace.moveCopies(moves)
            for task in tasks {
                if moved.contains(task.block) {
                    allocated[task.lost, default: 0] -= min(blockSize, allocated[task.lost, default: 0])
                    // Should the server come back (a partition healing), its copy is surplus.
                    deferFree([task.block], of: jobID, on: task.lost)
                } else {
                    allocated[task.target.id, default: 0] -= min(blockSize, allocated[task.target.id, default: 0])
                    orphans.append(task)
                }
            }
        }
        return orphans
    }
}

extension MetadataService {
    /// Starts restoring lost copies unless a repair is already running. The controller's table
    /// naming a server dead is what starts it; it runs until nothing more can be restored.
    func scheduleRepair() {
        let start = repairing.withLock { running in
            defer { running = true }
            return !running
        }
        guard start else { return }
        Task {
            var restored = 0
            while true {
                let made = await repairRound()
                restored += made
                if made == 0 { break }
            }
            repairing.withLock { $0 = false }
            if restored > 0 { logger.info("restored lost block copies", metadata: ["copies": "\(restored)"]) }
        }
    }

    /// One round of copies, several at once; returns how many were made.
    private func repairRound() async -> Int {
        let tasks = state.withLock { $0.planRepairs(limit: 256) }
        guard !tasks.isEmpty else { return 0 }
        var made: [RepairTask] = []
        var failed: [RepairTask] = []
        await withTaskGroup(of: (RepairTask, Bool).self) { group in
            var inFlight = 0
            for task in tasks {
                if inFlight == 16, let (done, ok) = await group.next() {
                    ok ? made.append(done) : failed.append(done)
                    inFlight -= 1
                }
                group.addTask { (task, await self.copy(task)) }
                inFlight += 1
            }
            for await (done, ok) in group { ok ? made.append(done) : failed.append(done) }
        }
        let orphans = state.withLock { $0.finishRepairs(made: made, failed: failed) }
        for orphan in orphans {
            _ = await free([BlockRef(id: orphan.block, server: orphan.target.id)], of: orphan.job)
        }
        return made.count - orphans.count
    }

    /// Reads the block from the first source that answers and writes it to the target.
    private func copy(_ task: RepairTask) async -> Bool {
        let read = signer.sign(job: task.job, rights: .read, blocks: task.block...task.block, lifetime: .seconds(60))
        let write = signer.sign(job: task.job, rights: .write, blocks: task.block...task.block, lifetime: .seconds(60))
        for source in task.sources {
            do {
                let data = try await storage.call(
                    try Endpoint(parsing: source.address),
                    ReadBlocks(jobID: task.job, capabilities: [read], ranges: [BlockRange(id: task.block)]))
                guard data.blocks.count == 1 else { continue }
                _ = try await storage.call(
                    try Endpoint(parsing: task.target.address),
                    WriteBlocks(
                        jobID: task.job, capabilities: [write], blocks: [.init(id: task.block, data: data.blocks[0])]))
                return true
            } catch {
                logger.debug(
                    "copying block \(task.block) of job \(task.job) from server \(source.id) to \(task.target.id): \(error)"
                )
            }
        }
        return false
    }
}
