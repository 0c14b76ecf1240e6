import NIOCore
import PocketProtocol

/// Everything a metadata server knows, as a plain value: its jobs' namespaces, the storage servers,
/// and how much of each server it has handed out. Mutations return the blocks to free; the service
/// around it does the I/O.
struct MetadataState {
    struct Job {
        var name: String
        var token: String
        var namespace: Namespace
        var placer: BlockPlacer
        /// Blocks handed out by `allocate` and not yet committed or aborted.
        var pending: [BlockID: ServerID] = [:]
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

    init(inlineCapacity: UInt64) {
        self.inlineCapacity = inlineCapacity
    }

    var isConfigured: Bool { blockSize > 0 }

    var inlineBytes: UInt64 {
        jobs.values.reduce(0) { $0 + $1.namespace.inlineBytes } + retired.values.reduce(0) { $0 + $1.namespace.inlineBytes }
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
            job.placer.update(request.weightMap)
            jobs[request.jobID] = job
            return
        }
        var job = Job(
            name: request.name, token: request.token, namespace: Namespace(now: now),
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
        released += job.pending.map { BlockRef(id: $0.key, server: $0.value) }
        if kept > 0 { retired[job.name] = (jobID, job.namespace, job.nextBlock) }
        unaccount(released)
        return (released, kept)
    }

    // MARK: Blocks

    /// Reserves `count` blocks by the job's weight map; all or none.
    mutating func allocate(_ auth: JobAuth, count: UInt32) throws(PocketError) -> [BlockRef] {
        let name = try authorize(auth).name
        guard count <= AllocateBlocks.maxCount else {
            throw PocketError(.invalidArgument, "at most \(AllocateBlocks.maxCount) blocks per request")
        }
        let blockSize = UInt64(blockSize)
        let servers = self.servers
        var placer = jobs[auth.job]!.placer
        let firstBlock = jobs[auth.job]!.nextBlock
        var planned = allocated
        var blocks: [BlockRef] = []
        blocks.reserveCapacity(Int(count))
        for index in 0..<UInt64(count) {
            let choice = placer.next { id in
                guard let server = servers[id], server.state == .active else { return false }
                return planned[id, default: 0] + blockSize <= server.capacityBytes
            }
            guard let server = choice else {
                let anyActive = placer.weightMap.entries.contains { servers[$0.server]?.state == .active }
                throw anyActive
                    ? PocketError(.noSpace, "the storage servers of job \(name) are full")
                    : PocketError(.unavailable, "no live storage server in job \(name)'s weight map")
            }
            planned[server, default: 0] += blockSize
            blocks.append(BlockRef(id: firstBlock + index, server: server))
        }
        allocated = planned
        jobs[auth.job]!.placer = placer
        jobs[auth.job]!.blockBytes += blockSize * UInt64(count)
        jobs[auth.job]!.nextBlock += UInt64(count)
        for block in blocks { jobs[auth.job]!.pending[block.id] = block.server }
        return blocks
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
        var current = Set<BlockID>()
        if let node = try? jobs[request.auth.job]!.namespace.resolve(request.path), case .file(let data) = node.content {
            current = Set(data.blocks.lazy.filter { !$0.isHole }.map(\.id))
        }
        var kept = Set<BlockID>()
        for block in request.blocks where !block.isHole {
            let reserved = jobs[request.auth.job]!.pending[block.id] == block.server
            guard reserved || current.contains(block.id), kept.insert(block.id).inserted else {
                throw PocketError(.invalidArgument, "block \(block.id) is neither reserved nor part of '\(request.path)'")
            }
        }
        let replaced = try jobs[request.auth.job]!.namespace.putFile(
            request.path, data: .init(size: request.size, blocks: request.blocks), persist: request.persist, now: now)
        for block in request.blocks { jobs[request.auth.job]!.pending.removeValue(forKey: block.id) }
        let released = replaced.filter { !$0.isHole && !kept.contains($0.id) }
        unaccount(released, job: request.auth.job)
        return released
    }

    mutating func abort(_ request: AbortBlocks) throws(PocketError) -> [BlockRef] {
        try authorize(request.auth)
        let released = request.blocks.filter { jobs[request.auth.job]!.pending.removeValue(forKey: $0.id) == $0.server }
        unaccount(released, job: request.auth.job)
        return released
    }

    /// Takes released blocks off the per-server counts and, when the job still lives, its own.
    private mutating func unaccount(_ blocks: [BlockRef], job: JobID? = nil) {
        let blockSize = UInt64(blockSize)
        for block in blocks {
            allocated[block.server, default: 0] -= min(blockSize, allocated[block.server, default: 0])
        }
        if let job, jobs[job] != nil {
            jobs[job]!.blockBytes -= min(blockSize * UInt64(blocks.count), jobs[job]!.blockBytes)
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
