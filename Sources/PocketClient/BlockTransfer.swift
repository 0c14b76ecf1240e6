import NIOCore
import PocketProtocol
import PocketRPC
import Synchronization

/// Moves a job's blocks to and from storage servers: batched per server, many requests in flight,
/// reads delivered in order with bounded read-ahead.
final class BlockTransfer: Sendable {
    private let job: JobID
    private let metadata: Endpoint
    private let metadataConnections: ConnectionPool
    private let storageConnections: ConnectionPool
    private let configuration: PocketClient.Configuration
    private let directory = Mutex<[ServerID: Endpoint]>([:])

    init(
        job: JobID, metadata: Endpoint, metadataConnections: ConnectionPool, storageConnections: ConnectionPool,
        configuration: PocketClient.Configuration
    ) {
        self.job = job
        self.metadata = metadata
        self.metadataConnections = metadataConnections
        self.storageConnections = storageConnections
        self.configuration = configuration
    }

    // MARK: Writing

    func write(_ blocks: [(BlockRef, ByteBuffer)]) async throws {
        let batches = Self.batches(of: blocks, by: { $0.0.server }, size: configuration.batchBlocks)
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

    private func writeBatch(_ batch: [(BlockRef, ByteBuffer)]) async throws {
        let server = batch[0].0.server
        let request = WriteBlocks(jobID: job, blocks: batch.map { WriteBlocks.Block(id: $0.0.id, data: $0.1) })
        do {
            _ = try await storageConnections.call(try await endpoint(of: server), request)
        } catch let error as PocketError where error.code == .noSpace {
            throw error
        } catch {
            throw PocketError(.io, "writing \(batch.count) blocks to storage server \(server): \(error)")
        }
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
    func read(_ pieces: [Piece]) async throws -> [ByteBuffer] {
        var result = [ByteBuffer](repeating: ByteBuffer(), count: pieces.count)
        var byServer: [ServerID: [Int]] = [:]
        for (index, piece) in pieces.enumerated() {
            if piece.block.isHole {
                result[index] = ByteBuffer(repeating: 0, count: piece.length)
            } else if piece.length > 0 {
                byServer[piece.block.server, default: []].append(index)
            }
        }
        try await withThrowingTaskGroup(of: [(Int, ByteBuffer)].self) { group in
            for (server, indices) in byServer {
                group.addTask {
                    let request = ReadBlocks(
                        jobID: self.job,
                        ranges: indices.map {
                            BlockRange(
                                id: pieces[$0].block.id, offset: UInt32(pieces[$0].offset),
                                length: UInt32(pieces[$0].length))
                        })
                    let reply: BlockData
                    do {
                        reply = try await self.storageConnections.call(try await self.endpoint(of: server), request)
                    } catch {
                        throw PocketError(.io, "reading \(indices.count) blocks from storage server \(server): \(error)")
                    }
                    guard reply.blocks.count == indices.count else {
                        throw PocketError(.io, "storage server \(server) returned \(reply.blocks.count) of \(indices.count) blocks")
                    }
                    return Array(zip(indices, reply.blocks))
                }
            }
            for try await answers in group {
                for (index, data) in answers {
                    let wanted = pieces[index].length
                    guard data.readableBytes <= wanted else {
                        throw PocketError(.io, "block \(pieces[index].block.id) returned more bytes than asked")
                    }
                    if data.readableBytes == wanted {
                        result[index] = data
                    } else {
                        var padded = data
                        padded.writeRepeatingByte(0, count: wanted - data.readableBytes)
                        result[index] = padded
                    }
                }
            }
        }
        return result
    }

    // MARK: Servers

    /// The address of a storage server, from the metadata server's table (refreshed on a miss).
    func endpoint(of server: ServerID) async throws -> Endpoint {
        if let known = directory.withLock({ $0[server] }) { return known }
        let table = try await metadataConnections.call(metadata, GetServers())
        var entries: [ServerID: Endpoint] = [:]
        for entry in table.servers { entries[entry.id] = try Endpoint(parsing: entry.address) }
        directory.withLock { $0 = entries }
        guard let endpoint = entries[server] else {
            throw PocketError(.io, "storage server \(server) is not in the cluster")
        }
        return endpoint
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
