import NIOCore
import PocketProtocol
import PocketRPC

/// One job's namespace: objects (files) and directories, addressed by `/`-separated keys.
/// Parents of a key are created as needed when it is written.
public final class PocketJob: Sendable {
    public let name: String
    public let id: JobID
    public let token: String
    public let metadata: Endpoint
    public let blockSize: Int
    public let inlineLimit: Int
    let client: PocketClient
    let transfer: BlockTransfer

    init(client: PocketClient, name: String, grant: JobGrant) throws {
        self.client = client
        self.name = name
        id = grant.jobID
        token = grant.token
        metadata = try Endpoint(parsing: grant.metadataAddress)
        blockSize = Int(grant.blockSize)
        inlineLimit = Int(grant.inlineLimit)
        transfer = BlockTransfer(
            auth: JobAuth(job: grant.jobID, token: grant.token), metadata: metadata,
            metadataConnections: client.metadataConnections,
            storageConnections: client.storageConnections, configuration: client.configuration)
    }

    var auth: JobAuth { JobAuth(job: id, token: token) }

    func call<R: WireRequest>(_ request: R) async throws -> R.Response {
        try await client.metadataConnections.call(metadata, request)
    }

    // MARK: Whole objects

    /// Stores `data` at `key`, replacing any object there, and returns the object's new change
    /// time. Small objects take one round trip; larger ones are striped over the job's storage
    /// servers with many blocks in flight.
    @discardableResult
    public func put(_ key: String, _ data: ByteBuffer, persist: Bool = false) async throws -> Int64 {
        if data.readableBytes <= inlineLimit {
            return try await call(PutInline(auth: auth, path: key, persist: persist, data: data)).changed
        }
        let count = (data.readableBytes + blockSize - 1) / blockSize
        let blocks = try await allocate(count)
        do {
            let slices = (0..<count).map { index in
                let start = index * blockSize
                return data.view(
                    at: data.readerIndex + start, length: min(blockSize, data.readableBytes - start))!
            }
            try await transfer.write(Array(zip(blocks, slices)))
            return try await call(
                CommitObject(auth: auth, path: key, persist: persist, size: UInt64(data.readableBytes), blocks: blocks)
            ).changed
        } catch {
            await abort(blocks)
            throw error
        }
    }

    @discardableResult
    public func put(_ key: String, _ bytes: some Sequence<UInt8>, persist: Bool = false) async throws -> Int64 {
        try await put(key, ByteBuffer(bytes: bytes), persist: persist)
    }

    /// The object at `key`. With `deleteAfterRead` the object is deleted once it has been read whole.
    public func get(_ key: String, deleteAfterRead: Bool = false) async throws -> ByteBuffer {
        let location = try await locate(key, deleteAfterRead: deleteAfterRead)
        if let inline = location.inline { return inline }
        var result = ByteBufferAllocator().buffer(capacity: Int(location.size))
        try await read(location, into: &result, key: key, deleteAfterRead: deleteAfterRead)
        return result
    }

    /// Reads the object at `key` into `buffer`, replacing its contents and reusing its memory: a
    /// caller that reads many objects into one buffer allocates (and faults in) its pages once.
    public func get(_ key: String, into buffer: inout ByteBuffer, deleteAfterRead: Bool = false) async throws {
        let location = try await locate(key, deleteAfterRead: deleteAfterRead)
        buffer.clear()
        if var inline = location.inline {
            buffer.writeBuffer(&inline)
            return
        }
        buffer.reserveCapacity(Int(location.size))
        try await read(location, into: &buffer, key: key, deleteAfterRead: deleteAfterRead)
    }

    /// Where the object at `key` is, keeping the read capability that comes with it.
    func locate(_ key: String, deleteAfterRead: Bool) async throws -> ObjectLocation {
        let location = try await call(GetObject(auth: auth, path: key, deleteAfterRead: deleteAfterRead))
        transfer.remember(location.capability)
        return location
    }

    private func read(
        _ location: ObjectLocation, into buffer: inout ByteBuffer, key: String, deleteAfterRead: Bool
    ) async throws {
        try await transfer.read(location) { chunk in
            var chunk = chunk
            buffer.writeBuffer(&chunk)
        }
        if deleteAfterRead { _ = try await call(Delete(auth: auth, path: key)) }
    }

    // MARK: Namespace

    public func stat(_ key: String) async throws -> EntryInfo {
        try await call(Stat(auth: auth, path: key))
    }

    /// Entries of the directory `path` whose names start with `prefix`, sorted by name.
    public func list(_ path: String = "/", prefix: String = "") async throws -> [EntryInfo] {
        try await call(List(auth: auth, path: path, prefix: prefix)).entries
    }

    public func delete(_ key: String, recursive: Bool = false) async throws {
        _ = try await call(Delete(auth: auth, path: key, recursive: recursive))
    }

    public func rename(_ from: String, to: String) async throws {
        _ = try await call(Rename(auth: auth, from: from, to: to))
    }

    public func makeDirectory(_ path: String, parents: Bool = false) async throws {
        _ = try await call(MakeDirectory(auth: auth, path: path, parents: parents))
    }

    // MARK: Blocks

    func allocate(_ count: Int) async throws -> [BlockRef] {
        var blocks: [BlockRef] = []
        blocks.reserveCapacity(count)
        do {
            while blocks.count < count {
                let chunk = UInt32(min(count - blocks.count, Int(AllocateBlocks.maxCount)))
                let reserved = try await call(AllocateBlocks(auth: auth, count: chunk))
                transfer.remember(reserved.capability)
                blocks += reserved.blocks
            }
        } catch {
            await abort(blocks)
            throw error
        }
        return blocks
    }

    /// Returns reserved blocks; best effort, since the job's end frees them anyway.
    func abort(_ blocks: [BlockRef]) async {
        guard !blocks.isEmpty else { return }
        _ = try? await call(AbortBlocks(auth: auth, blocks: blocks))
    }
}
