import NIOCore
import PocketProtocol

/// Everything a metadata server knows, as a plain value: its jobs' namespaces, the storage servers,
/// and how much of each server it has handed out. Mutations return the blocks to free; the service
/// around it does the I/O.
struct MetadataState {
    struct Job {
        var name: String
        var token: String
        var hints: JobHints
        var namespace: Namespace
        var placer: BlockPlacer
        /// Blocks handed out by `allocate` and not yet committed or aborted.
        var pending: [BlockID: BlockRef] = [:]
        var nextBlock: BlockID = 1
        /// Bytes of blocks the job holds, reserved or stored (whole blocks).
        var blockBytes: UInt64 = 0
    }

    var blockSize: UInt32 = 0
    var inlineLimit: UInt32 = 0
    let inlineCapacity: UInt64
    var jobs: [JobID: Job] = [:]
    /// Namespaces of ended jobs that hold persist-after-job objects, by job name.
    var retired: [String: (id: JobID, namespace: Namespace, nextBlock: BlockID)] = [:]
    var servers: [ServerID: StorageServerEntry] = [:]
    /// Bytes of blocks this server has placed on each storage server (whole blocks).
    var allocated: [ServerID: UInt64] = [:]
    /// Blocks whose lost copy is being restored.
    var copying: Set<RepairTask.Key> = []
    /// Whether the last repair failed to make some copies (tried again at the next table push).
    var repairUnfinished = false
    /// Frees storage servers missed, by server.
    var undelivered: [ServerID: UndeliveredFrees] = [:]

    init(inlineCapacity: UInt64) {
        self.inlineCapacity = inlineCapacity
    }

    var isConfigured: Bool { blockSize > 0 }

    var inlineBytes: UInt64 {
        jobs.values.reduce(0) { $0 + $1.namespace.inlineBytes }
            + retired.values.reduce(0) { $0 + $1.namespace.inlineBytes }
    }

    // MARK: Jobs

    @discardableResult
    func authorize(_ auth: JobAuth) throws(PocketError) -> Job {
        guard isConfigured else { throw PocketError(.unavailable, "metadata server is not registered yet") }
        guard let job = jobs[auth.job] else { throw PocketError(.unknownJob, "job \(auth.job) is not on this server") }
        guard constantTimeEqual(job.token, auth.token) else {
            throw PocketError(.unauthorized, "wrong token for job \(job.name)")
        }
        return job
    }

    mutating func assign(_ request: AssignJob, now: Int64) {
        if var job = jobs[request.jobID] {
            job.token = request.token
            job.hints = request.hints
            job.placer.update(request.weightMap)
            jobs[request.jobID] = job
            return
        }
        var job = Job(
            name: request.name, token: request.token, hints: request.hints, namespace: Namespace(now: now),
            placer: BlockPlacer(weightMap: request.weightMap))
        if let old = retired[request.name], old.id == request.jobID {
            retired.removeValue(forKey: request.name)
            job.namespace = old.namespace
            job.nextBlock = old.nextBlock
        }
        jobs[request.jobID] = job
    }

    /// Ends a job: ephemeral files and pending blocks are released; persisted files are kept for a
    /// later job of the same name.
    mutating func drop(_ jobID: JobID, now: Int64) -> (released: [BlockRef], kept: Int)? {
        guard var job = jobs.removeValue(forKey: jobID) else { return nil }
        var (released, kept) = job.namespace.dropEphemeral(now: now)
        released = released.filter { !$0.isHole }
        released += job.pending.values
        if kept > 0 { retired[job.name] = (jobID, job.namespace, job.nextBlock) }
        unaccount(released)
        return (released, kept)
    }

    // MARK: Blocks

    /// Reserves `count` blocks by the job's weight map, each on as many servers as the job asked
    /// copies; all or none.
    mutating func allocate(_ auth: JobAuth, count: UInt32) throws(PocketError) -> [BlockRef] {
        let job = try authorize(auth)
        guard count <= AllocateBlocks.maxCount else {
            throw PocketError(.invalidArgument, "at most \(AllocateBlocks.maxCount) blocks per request")
        }
        let blockSize = UInt64(blockSize)
        let copies = job.hints.copies
        var placer = job.placer
        let firstBlock = job.nextBlock
        var planned = allocated
        var blocks: [BlockRef] = []
        blocks.reserveCapacity(Int(count))
        for index in 0..<UInt64(count) {
            let servers = try placeCopies(copies, of: job, placer: &placer, planned: planned)
            for server in servers { planned[server, default: 0] += blockSize }
            blocks.append(BlockRef(id: firstBlock + index, server: servers[0], replicas: Array(servers.dropFirst())))
        }
        allocated = planned
        jobs[auth.job]!.placer = placer
        jobs[auth.job]!.blockBytes += blockSize * UInt64(count) * UInt64(copies)
        jobs[auth.job]!.nextBlock += UInt64(count)
        for block in blocks { jobs[auth.job]!.pending[block.id] = block }
        return blocks
    }

    /// Distinct servers for the copies of one block: the weight map's choice first, then more of
    /// the map, then other live servers of the first one's tier when the map has too few.
    private func placeCopies(
        _ copies: Int, of job: Job, placer: inout BlockPlacer, planned: [ServerID: UInt64]
    ) throws(PocketError) -> [ServerID] {
        let blockSize = UInt64(blockSize)
        var chosen: [ServerID] = []
        func fits(_ id: ServerID) -> Bool {
            guard let server = servers[id], server.state == .active, !chosen.contains(id) else { return false }
            return planned[id, default: 0] + blockSize <= server.capacityBytes
        }
        while chosen.count < copies, let server = placer.next(eligible: fits) { chosen.append(server) }
        if chosen.isEmpty {
            let anyActive = placer.weightMap.entries.contains { servers[$0.server]?.state == .active }
            throw anyActive
                ? PocketError(.noSpace, "the storage servers of job \(job.name) are full")
                : PocketError(.unavailable, "no live storage server in job \(job.name)'s weight map")
        }
        if chosen.count < copies {
            chosen += spareServers(like: chosen[0], excluding: chosen, planned: planned).prefix(copies - chosen.count)
        }
        guard chosen.count == copies else {
            throw PocketError(
                .noSpace,
                "job \(job.name) asks for \(copies) copies of each block; only \(chosen.count) storage servers have room"
            )
        }
        return chosen
    }

    /// Live servers of `server`'s tier outside `excluding` with room for a block, emptiest first.
    func spareServers(like server: ServerID, excluding: [ServerID], planned: [ServerID: UInt64]) -> [ServerID] {
        let blockSize = UInt64(blockSize)
        let tier = servers[server]?.tier
        return servers.values
            .filter { candidate in
                candidate.tier == tier && candidate.state == .active && !excluding.contains(candidate.id)
                    && planned[candidate.id, default: 0] + blockSize <= candidate.capacityBytes
            }
            .sorted { (planned[$0.id, default: 0], $0.id) < (planned[$1.id, default: 0], $1.id) }
            .map(\.id)
    }

    mutating func commit(_ request: CommitObject, now: Int64) throws(PocketError) -> [BlockRef] {
        try authorize(request.auth)
        let blockSize = UInt64(blockSize)
        let expected = (request.size + blockSize - 1) / blockSize
        guard UInt64(request.blocks.count) == expected else {
            throw PocketError(
                .invalidArgument, "\(request.size) bytes need \(expected) blocks, \(request.blocks.count) given")
        }
        // Blocks the file at `path` holds now may be kept; everything else must be freshly reserved.
        // Kept blocks are recorded as this server knows them: a copy moved since the client read
        // the layout stays moved.
        var current: [BlockID: BlockRef] = [:]
        if let node = try? jobs[request.auth.job]!.namespace.resolve(request.path), case .file(let data) = node.content
        {
            for block in data.blocks where !block.isHole { current[block.id] = block }
        }
        var kept = Set<BlockID>()
        var blocks = request.blocks
        for (index, block) in request.blocks.enumerated() where !block.isHole {
            let reserved = jobs[request.auth.job]!.pending[block.id] == block
            guard reserved || current[block.id] != nil, kept.insert(block.id).inserted else {
                throw PocketError(
                    .invalidArgument, "block \(block.id) is neither reserved nor part of '\(request.path)'")
            }
            if !reserved { blocks[index] = current[block.id]! }
        }
        let replaced = try jobs[request.auth.job]!.namespace.putFile(
            request.path, data: .init(size: request.size, blocks: blocks), persist: request.persist, now: now)
        for block in request.blocks { jobs[request.auth.job]!.pending.removeValue(forKey: block.id) }
        let released = replaced.filter { !$0.isHole && !kept.contains($0.id) }
        unaccount(released, job: request.auth.job)
        return released
    }

    mutating func abort(_ request: AbortBlocks) throws(PocketError) -> [BlockRef] {
        try authorize(request.auth)
        let released = request.blocks.filter { jobs[request.auth.job]!.pending[$0.id] == $0 }
        for block in released { jobs[request.auth.job]!.pending.removeValue(forKey: block.id) }
        unaccount(released, job: request.auth.job)
        return released
    }

    /// Takes released blocks off the per-server counts and, when the job still lives, its own.
    private mutating func unaccount(_ blocks: [BlockRef], job: JobID? = nil) {
        let blockSize = UInt64(blockSize)
        var copies: UInt64 = 0
        for block in blocks {
            for server in block.servers {
                allocated[server, default: 0] -= min(blockSize, allocated[server, default: 0])
                copies += 1
            }
        }
        if let job, jobs[job] != nil {
            jobs[job]!.blockBytes -= min(blockSize * copies, jobs[job]!.blockBytes)
        }
    }

    // MARK: Namespace operations
    // Each edits the job's namespace in place (`jobs[id]!.…`): a copy would duplicate the whole tree.

    mutating func putInline(_ request: PutInline, data: ByteBuffer, now: Int64) throws(PocketError) -> [BlockRef] {
        try authorize(request.auth)
        guard data.readableBytes <= inlineLimit else {
            throw PocketError(.invalidArgument, "\(data.readableBytes) bytes exceed the inline limit \(inlineLimit)")
        }
        guard inlineBytes + UInt64(data.readableBytes) <= inlineCapacity else {
            throw PocketError(.noSpace, "metadata server's inline capacity of \(inlineCapacity) bytes is full")
        }
        let replaced = try jobs[request.auth.job]!.namespace.putFile(
            request.path, data: .init(size: UInt64(data.readableBytes), inline: data), persist: request.persist,
            now: now
        ).filter { !$0.isHole }
        unaccount(replaced, job: request.auth.job)
        return replaced
    }

    mutating func get(_ request: GetObject, now: Int64) throws(PocketError) -> ObjectLocation {
        let node = try authorize(request.auth).namespace.resolve(request.path)
        guard case .file(let data) = node.content else {
            throw PocketError(.isDirectory, "'\(request.path)' is not a file")
        }
        if request.deleteAfterRead, data.inline != nil || data.size == 0 {
            _ = jobs[request.auth.job]!.namespace.removeFile(id: node.id, now: now)
        }
        return ObjectLocation(
            size: data.size, blockSize: blockSize, inline: data.inline ?? (data.size == 0 ? ByteBuffer() : nil),
            blocks: data.blocks)
    }

    /// Ids of every block `job` has been given so far.
    func givenBlocks(_ job: JobID) -> ClosedRange<BlockID>? {
        guard let next = jobs[job]?.nextBlock, next > 1 else { return nil }
        return 1...(next - 1)
    }

    /// The blocks a fresh capability may cover: for reading, any the job has been given (ids only
    /// grow, so one capability serves every file); for writing, reserved ones only.
    func authorizeBlocks(_ request: AuthorizeBlocks) throws(PocketError) -> ClosedRange<BlockID> {
        let job = try authorize(request.auth)
        switch request.rights {
        case .read:
            guard request.blocks.upperBound < job.nextBlock else {
                throw PocketError(
                    .unauthorized, "block \(request.blocks.upperBound) was never given to job \(job.name)")
            }
            return givenBlocks(request.auth.job)!
        case .write, [.read, .write]:
            // The span checked without `count`, which traps for ranges wider than Int.
            guard request.blocks.upperBound - request.blocks.lowerBound < UInt64(AllocateBlocks.maxCount),
                request.blocks.allSatisfy({ job.pending[$0] != nil })
            else {
                throw PocketError(.unauthorized, "blocks \(request.blocks) are not all reserved by job \(job.name)")
            }
            return request.blocks
        default:
            throw PocketError(.unauthorized, "clients may ask for read or write rights only, not \(request.rights)")
        }
    }

    mutating func delete(_ request: Delete, now: Int64) throws(PocketError) -> [BlockRef] {
        try authorize(request.auth)
        let released = try jobs[request.auth.job]!.namespace.delete(
            request.path, recursive: request.recursive, kind: request.kind, now: now
        ).filter { !$0.isHole }
        unaccount(released, job: request.auth.job)
        return released
    }

    mutating func rename(_ request: Rename, now: Int64) throws(PocketError) -> [BlockRef] {
        try authorize(request.auth)
        let released = try jobs[request.auth.job]!.namespace.rename(
            request.from, to: request.to, noReplace: request.noReplace, now: now
        ).filter { !$0.isHole }
        unaccount(released, job: request.auth.job)
        return released
    }

    mutating func create(_ request: Create, now: Int64) throws(PocketError) -> EntryInfo {
        try authorize(request.auth)
        return try jobs[request.auth.job]!.namespace.create(
            request.path, mode: request.mode, exclusive: request.exclusive, now: now
        ).info
    }

    mutating func makeSymlink(_ request: MakeSymlink, now: Int64) throws(PocketError) -> EntryInfo {
        try authorize(request.auth)
        return try jobs[request.auth.job]!.namespace.makeSymlink(request.path, target: request.target, now: now).info
    }

    mutating func setAttributes(_ request: SetAttributes, now: Int64) throws(PocketError) -> EntryInfo {
        try authorize(request.auth)
        return try jobs[request.auth.job]!.namespace.setAttributes(
            request.path, mode: request.mode, modified: request.modified, now: now
        ).info
    }

    mutating func makeDirectory(_ request: MakeDirectory, now: Int64) throws(PocketError) {
        try authorize(request.auth)
        try jobs[request.auth.job]!.namespace.makeDirectory(request.path, parents: request.parents, now: now)
    }
}
