import NIOCore
import PocketProtocol
import PocketRPC
import Synchronization

/// Moves a job's blocks to and from storage servers: batched per server, many requests in flight,
/// every copy written, reads delivered in order with bounded read-ahead and served by a block's
/// next copy when a server fails.
final class BlockTransfer: Sendable {
    private let auth: JobAuth
    private var job: JobID { auth.job }
    private let metadata: Endpoint
    private let metadataConnections: ConnectionPool
    private let storageConnections: ConnectionPool
    private let configuration: PocketClient.Configuration
    /// Storage servers as the metadata server's table lists them, with their parsed addresses.
    private let directory = Mutex<[ServerID: (entry: StorageServerEntry, endpoint: Endpoint)]>([:])
    /// Servers that failed a read lately, tried last for a while (until the controller's verdict
    /// reaches the table, or they answer again).
    private let suspects = Mutex<[ServerID: ContinuousClock.Instant]>([:])
    static let suspicion = Duration.seconds(5)
    private let capabilities = CapabilityCache()

    init(
        auth: JobAuth, metadata: Endpoint, metadataConnections: ConnectionPool, storageConnections: ConnectionPool,
        configuration: PocketClient.Configuration
    ) {
        self.auth = auth
        self.metadata = metadata
        self.metadataConnections = metadataConnections
        self.storageConnections = storageConnections
        self.configuration = configuration
    }

    // MARK: Writing

    /// Writes every copy of each block; fails unless all copies are written.
    func write(_ blocks: [(BlockRef, ByteBuffer)]) async throws {
        var copies: [(server: ServerID, id: BlockID, data: ByteBuffer)] = []
        copies.reserveCapacity(blocks.count)
        for (block, data) in blocks {
            for server in block.servers { copies.append((server, block.id, data)) }
        }
        let batches = Self.batches(of: copies, by: { $0.server }, size: configuration.batchBlocks)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for batch in batches {
                if inFlight >= configuration.maxInFlight {
                    try await group.next()
                    inFlight -= 1
                }
                group.addTask { try await self.writeBatch(batch) }
                inFlight += 1
            }
            try await group.waitForAll()
        }
    }

    private func writeBatch(_ batch: [(server: ServerID, id: BlockID, data: ByteBuffer)]) async throws {
        let server = batch[0].server
        let ids = batch.map(\.id)
        var request = WriteBlocks(
            jobID: job, capabilities: try await writeCapabilities(ids),
            blocks: batch.map { WriteBlocks.Block(id: $0.id, data: $0.data) })
        do {
            let endpoint = try await endpoint(of: server)
            do {
                _ = try await storageConnections.call(endpoint, request)
            } catch let error as PocketError where error.code == .unauthorized {
                // Signed before a restart of the cluster key, or lapsed on a slow path: ask again once.
                request.capabilities = try await authorizeWrites(ids)
                _ = try await storageConnections.call(endpoint, request)
            }
        } catch let error as PocketError where error.code == .noSpace || error.code == .unauthorized {
            throw error
        } catch {
            throw PocketError(.io, "writing \(batch.count) blocks to storage server \(server): \(error)")
        }
    }

    // MARK: Capabilities

    /// Keeps the capability a metadata reply carried.
    func remember(_ capability: Capability?) {
        capabilities.remember(capability)
    }

    private func writeCapabilities(_ ids: [BlockID]) async throws -> [Capability] {
        if let held = capabilities.write(ids) { return held }
        return try await authorizeWrites(ids)
    }

    /// Fresh write capabilities, one per run of consecutive ids: a batch may hold blocks of several
    /// reservations, and the ids between them are not this writer's.
    private func authorizeWrites(_ ids: [BlockID]) async throws -> [Capability] {
        var runs: [ClosedRange<BlockID>] = []
        for id in ids.sorted() {
            if let last = runs.last, id <= last.upperBound + 1 {
                runs[runs.count - 1] = last.lowerBound...max(last.upperBound, id)
            } else {
                runs.append(id...id)
            }
        }
        var granted: [Capability] = []
        for run in runs { granted.append(try await authorize(.write, run)) }
        return granted
    }

    private func readCapability(upTo highest: BlockID) async throws -> Capability {
        if let held = capabilities.read(upTo: highest) { return held }
        return try await authorize(.read, 1...highest)
    }

    private func authorize(_ rights: Capability.Rights, _ blocks: ClosedRange<BlockID>) async throws -> Capability {
        let capability = try await metadataConnections.call(
            metadata, AuthorizeBlocks(auth: auth, rights: rights, blocks: blocks))
        capabilities.remember(capability)
        return capability
    }

    // MARK: Reading

    /// A byte range of one block to read. Holes read as zeros; a stored block shorter than the range
    /// (a file grown past it) is extended with zeros.
    struct Piece: Sendable {
        var block: BlockRef
        var offset: Int
        var length: Int
    }

    /// Reads the blocks of `location` and hands their bytes to `consume` in order, one block at a time.
    func read(_ location: ObjectLocation, consume: (ByteBuffer) async throws -> Void) async throws {
        let blockSize = UInt64(location.blockSize)
        guard UInt64(location.blocks.count) * blockSize >= location.size else {
            throw PocketError(.io, "object of \(location.size) bytes has only \(location.blocks.count) blocks")
        }
        let pieces = location.blocks.indices.map { index in
            Piece(
                block: location.blocks[index], offset: 0,
                length: Int(min(blockSize, location.size - UInt64(index) * blockSize)))
        }
        let window = configuration.batchBlocks
        let windows = stride(from: 0, to: pieces.count, by: window).map { $0..<min($0 + window, pieces.count) }
        try await withThrowingTaskGroup(of: (Int, [ByteBuffer]).self) { group in
            var launched = 0
            var delivered = 0
            var ready: [Int: [ByteBuffer]] = [:]
            while delivered < windows.count {
                while launched < windows.count, launched - delivered < configuration.maxInFlight {
                    let index = launched
                    let range = windows[index]
                    group.addTask { (index, try await self.read(Array(pieces[range]))) }
                    launched += 1
                }
                guard let (index, blocks) = try await group.next() else { break }
                ready[index] = blocks
                while let blocks = ready.removeValue(forKey: delivered) {
                    for block in blocks { try await consume(block) }
                    delivered += 1
                }
            }
        }
    }

    /// Reads pieces of blocks, one request per server, all servers at once; returns them in order.
    /// Pieces a server fails to return are asked of the block's next copy; a block whose every
    /// copy failed is an I/O error. A refused capability is renewed once, not held against a server.
    func read(_ pieces: [Piece]) async throws -> [ByteBuffer] {
        var result = [ByteBuffer](repeating: ByteBuffer(), count: pieces.count)
        var pending: [Int] = []
        var highest: BlockID = 0
        for (index, piece) in pieces.enumerated() {
            if piece.block.isHole {
                result[index] = ByteBuffer(repeating: 0, count: piece.length)
            } else if piece.length > 0 {
                pending.append(index)
                highest = max(highest, piece.block.id)
            }
        }
        guard !pending.isEmpty else { return result }
        var capability = try await readCapability(upTo: highest)
        var renewed = false
        var order = try await readingOrder(pieces, pending)
        var failures: [ServerID: any Error] = [:]
        defer { if !failures.isEmpty { suspect(Array(failures.keys)) } }
        while !pending.isEmpty {
            var byServer: [ServerID: [Int]] = [:]
            for index in pending {
                guard let server = order[index]?.first else {
                    let reasons = pieces[index].block.servers.map {
                        "storage server \($0): \(failures[$0].map { "\($0)" } ?? "dead")"
                    }
                    throw PocketError(
                        .io,
                        "no copy of block \(pieces[index].block.id) could be read (\(reasons.joined(separator: "; ")))")
                }
                byServer[server, default: []].append(index)
            }
            pending = []
            let answers = await withTaskGroup(of: (ServerID, [Int], Result<[ByteBuffer], any Error>).self) { group in
                for (server, indices) in byServer {
                    let request = ReadBlocks(
                        jobID: job, capabilities: [capability],
                        ranges: indices.map {
                            BlockRange(
                                id: pieces[$0].block.id, offset: UInt32(pieces[$0].offset),
                                length: UInt32(pieces[$0].length))
                        })
                    group.addTask {
                        do {
                            let reply = try await self.storageConnections.call(
                                try await self.endpoint(of: server), request)
                            guard reply.blocks.count == indices.count else {
                                throw PocketError(.io, "returned \(reply.blocks.count) of \(indices.count) blocks")
                            }
                            return (server, indices, .success(reply.blocks))
                        } catch {
                            return (server, indices, .failure(error))
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            var refused: [Int] = []
            for (server, indices, answer) in answers {
                switch answer {
                case .success(let blocks):
                    for (index, data) in zip(indices, blocks) {
                        result[index] = try Self.fitted(data, to: pieces[index])
                    }
                case .failure(let error as PocketError) where error.code == .unauthorized && !renewed:
                    refused += indices
                case .failure(let error):
                    failures[server] = error
                    for index in indices { order[index]?.removeFirst() }
                    pending += indices
                }
            }
            if !refused.isEmpty {
                // Signed with a key the cluster no longer uses, say: a new one, and the same servers.
                capability = try await authorize(.read, 1...highest)
                renewed = true
                pending += refused
            }
        }
        return result
    }

    /// Servers that failed a read are tried last for a while; the table may know more by now.
    private func suspect(_ servers: [ServerID]) {
        let now = ContinuousClock.now
        suspects.withLock { suspects in
            for server in servers { suspects[server] = now }
        }
        Task { _ = try? await self.refreshDirectory() }
    }

    /// Each pending piece's servers in the order to try them: the block's own order, servers the
    /// table calls dead or that failed lately last.
    private func readingOrder(_ pieces: [Piece], _ pending: [Int]) async throws -> [Int: [ServerID]] {
        guard pending.contains(where: { !pieces[$0].block.replicas.isEmpty }) else {
            return Dictionary(uniqueKeysWithValues: pending.map { ($0, [pieces[$0].block.server]) })
        }
        let states = try await serverStates()
        let now = ContinuousClock.now
        let suspected = suspects.withLock { suspects in
            suspects = suspects.filter { now - $0.value < Self.suspicion }
            return Set(suspects.keys)
        }
        var order: [Int: [ServerID]] = [:]
        for index in pending {
            let servers = pieces[index].block.servers
            if servers.count == 1 {
                order[index] = servers
                continue
            }
            let doubtful = servers.filter { states[$0] == .dead || suspected.contains($0) }
            order[index] = servers.filter { !doubtful.contains($0) } + doubtful
        }
        return order
    }

    /// A block's bytes sized to the piece: a stored block shorter than the range (a file grown past
    /// it) is extended with zeros; one longer than asked is refused.
    private static func fitted(_ data: ByteBuffer, to piece: Piece) throws -> ByteBuffer {
        guard data.readableBytes <= piece.length else {
            throw PocketError(.io, "block \(piece.block.id) returned more bytes than asked")
        }
        if data.readableBytes == piece.length { return data }
        var padded = data
        padded.writeRepeatingByte(0, count: piece.length - data.readableBytes)
        return padded
    }

    // MARK: Servers

    /// The address of a storage server, from the metadata server's table (refreshed on a miss).
    func endpoint(of server: ServerID) async throws -> Endpoint {
        if let known = directory.withLock({ $0[server]?.endpoint }) { return known }
        guard let endpoint = try await refreshDirectory()[server]?.endpoint else {
            throw PocketError(.io, "storage server \(server) is not in the cluster")
        }
        return endpoint
    }

    /// Servers' states as last heard; the table is fetched when none is known yet.
    private func serverStates() async throws -> [ServerID: ServerState] {
        var entries = directory.withLock { $0 }
        if entries.isEmpty { entries = try await refreshDirectory() }
        return entries.mapValues(\.entry.state)
    }

    /// The metadata server's table, which the controller keeps current.
    @discardableResult
    func refreshDirectory() async throws -> [ServerID: (entry: StorageServerEntry, endpoint: Endpoint)] {
        let table = try await metadataConnections.call(metadata, GetServers())
        var entries: [ServerID: (entry: StorageServerEntry, endpoint: Endpoint)] = [:]
        for entry in table.servers { entries[entry.id] = (entry, try Endpoint(parsing: entry.address)) }
        directory.withLock { $0 = entries }
        return entries
    }

    /// Groups items by server, keeping their order, in batches of at most `size`.
    static func batches<T>(of items: [T], by server: (T) -> ServerID, size: Int) -> [[T]] {
        var open: [ServerID: [T]] = [:]
        var result: [[T]] = []
        for item in items {
            let key = server(item)
            open[key, default: []].append(item)
            if open[key]!.count == size {
                result.append(open.removeValue(forKey: key)!)
            }
        }
        result += open.keys.sorted().map { open[$0]! }
        return result
    }
}
