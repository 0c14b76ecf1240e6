import NIOCore

// Messages served by metadata servers: first those the controller sends, then those clients send.

public struct AssignJob: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.assignJob

    /// The controller's `control` capability for the job.
    public var capability: Capability
    public var jobID: JobID
    public var name: String
    public var token: String
    public var hints: JobHints
    public var weightMap: WeightMap

    public init(
        capability: Capability, jobID: JobID, name: String, token: String, hints: JobHints, weightMap: WeightMap
    ) {
        self.capability = capability
        self.jobID = jobID
        self.name = name
        self.token = token
        self.hints = hints
        self.weightMap = weightMap
    }

    public init(from buffer: inout ByteBuffer) throws {
        capability = try Capability(from: &buffer)
        jobID = try buffer.readWire()
        name = try buffer.readWireString()
        token = try buffer.readWireString()
        hints = try JobHints(from: &buffer)
        weightMap = try WeightMap(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        capability.encode(into: &writer)
        writer.buffer.writeInteger(jobID)
        writer.buffer.writeWireString(name)
        writer.buffer.writeWireString(token)
        hints.encode(into: &writer)
        weightMap.encode(into: &writer)
    }
}

/// Ends a job on its metadata server: every block not marked persist-after-job is freed.
public struct DropJob: WireRequest, Hashable {
    public typealias Response = DropJobReply
    public static let opcode = Opcode.dropJob

    public var capability: Capability
    public var jobID: JobID

    public init(capability: Capability, jobID: JobID) {
        self.capability = capability
        self.jobID = jobID
    }

    public init(from buffer: inout ByteBuffer) throws {
        capability = try Capability(from: &buffer)
        jobID = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        capability.encode(into: &writer)
        writer.buffer.writeInteger(jobID)
    }
}

public struct DropJobReply: WireMessage, Hashable {
    public var freed: FreeReply
    /// Objects kept because they were written with persist-after-job.
    public var persistedObjects: UInt64

    public init(freed: FreeReply, persistedObjects: UInt64) {
        self.freed = freed
        self.persistedObjects = persistedObjects
    }

    public init(from buffer: inout ByteBuffer) throws {
        freed = try FreeReply(from: &buffer)
        persistedObjects = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        freed.encode(into: &writer)
        writer.buffer.writeInteger(persistedObjects)
    }
}

/// The storage servers, their addresses and states: pushed by the controller, fetched by clients.
public struct ServerTable: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.serverTable

    /// The controller's `control` capability when it pushes the table; none in answers to clients.
    public var capability: Capability?
    public var servers: [StorageServerEntry]

    public init(capability: Capability? = nil, servers: [StorageServerEntry]) {
        self.capability = capability
        self.servers = servers
    }

    public init(from buffer: inout ByteBuffer) throws {
        capability = try buffer.readWireBool() ? try Capability(from: &buffer) : nil
        servers = try buffer.readWireArray(minimumElementSize: 16) { try StorageServerEntry(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireBool(capability != nil)
        capability?.encode(into: &writer)
        writer.buffer.writeWireArray(servers) { $1.write(to: &$0) }
    }
}

public struct SetWeightMap: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.setWeightMap

    public var capability: Capability
    public var jobID: JobID
    public var hints: JobHints
    public var weightMap: WeightMap

    public init(capability: Capability, jobID: JobID, hints: JobHints, weightMap: WeightMap) {
        self.capability = capability
        self.jobID = jobID
        self.hints = hints
        self.weightMap = weightMap
    }

    public init(from buffer: inout ByteBuffer) throws {
        capability = try Capability(from: &buffer)
        jobID = try buffer.readWire()
        hints = try JobHints(from: &buffer)
        weightMap = try WeightMap(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        capability.encode(into: &writer)
        writer.buffer.writeInteger(jobID)
        hints.encode(into: &writer)
        weightMap.encode(into: &writer)
    }
}

/// The answer to a write that makes an object visible: the change time the object now has. A
/// mount keeps it, to tell its own changes from other clients' at the next lookup.
public struct Committed: WireMessage, Hashable {
    public var changed: Int64

    public init(changed: Int64) {
        self.changed = changed
    }

    public init(from buffer: inout ByteBuffer) throws {
        changed = try buffer.readWire(Int64.self)
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(changed)
    }
}

/// Stores a small object whole on the metadata server: one round trip.
public struct PutInline: JobRequest, Hashable {
    public typealias Response = Committed
    public static let opcode = Opcode.putInline

    public var auth: JobAuth
    public var path: String
    public var persist: Bool
    public var data: ByteBuffer

    public init(auth: JobAuth, path: String, persist: Bool, data: ByteBuffer) {
        self.auth = auth
        self.path = path
        self.persist = persist
        self.data = data
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        persist = try buffer.readWireBool()
        data = try buffer.readWireBytes()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireBool(persist)
        writer.writeBytes(data)
    }
}

public struct GetObject: JobRequest, Hashable {
    public typealias Response = ObjectLocation
    public static let opcode = Opcode.getObject

    public var auth: JobAuth
    public var path: String
    /// Delete an inline object as it is returned. Block objects are deleted by the client once it
    /// has read them.
    public var deleteAfterRead: Bool

    public init(auth: JobAuth, path: String, deleteAfterRead: Bool = false) {
        self.auth = auth
        self.path = path
        self.deleteAfterRead = deleteAfterRead
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        deleteAfterRead = try buffer.readWireBool()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireBool(deleteAfterRead)
    }
}

/// An object's bytes (inline) or the blocks that hold them, in order.
public struct ObjectLocation: WireMessage, Hashable {
    public var size: UInt64
    public var blockSize: UInt32
    public var inline: ByteBuffer?
    public var blocks: [BlockRef]
    /// Read capability for the job's blocks, when the object has any.
    public var capability: Capability?

    public init(size: UInt64, blockSize: UInt32, inline: ByteBuffer?, blocks: [BlockRef], capability: Capability? = nil)
    {
        self.size = size
        self.blockSize = blockSize
        self.inline = inline
        self.blocks = blocks
        self.capability = capability
    }

    public init(from buffer: inout ByteBuffer) throws {
        size = try buffer.readWire()
        blockSize = try buffer.readWire()
        inline = try buffer.readWireBool() ? try buffer.readWireBytes() : nil
        blocks = try buffer.readWireArray(minimumElementSize: BlockRef.wireSize) { try BlockRef(from: &$0) }
        capability = try buffer.readWireBool() ? try Capability(from: &buffer) : nil
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(size)
        writer.buffer.writeInteger(blockSize)
        writer.buffer.writeWireBool(inline != nil)
        if let inline { writer.writeBytes(inline) }
        writer.buffer.writeWireArray(blocks) { $1.write(to: &$0) }
        writer.buffer.writeWireBool(capability != nil)
        capability?.encode(into: &writer)
    }
}

/// Reserves `count` new blocks for the job, placed by its weight map. They belong to the job's
/// pending uploads until committed into an object or aborted.
public struct AllocateBlocks: JobRequest, Hashable {
    public typealias Response = BlockList
    public static let opcode = Opcode.allocateBlocks
    public static let maxCount: UInt32 = 1 << 16

    public var auth: JobAuth
    public var count: UInt32

    public init(auth: JobAuth, count: UInt32) {
        self.auth = auth
        self.count = count
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        count = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeInteger(count)
    }
}

public struct BlockList: WireMessage, Hashable {
    public var blocks: [BlockRef]
    /// Read and write capability for exactly these blocks.
    public var capability: Capability?

    public init(blocks: [BlockRef], capability: Capability? = nil) {
        self.blocks = blocks
        self.capability = capability
    }

    public init(from buffer: inout ByteBuffer) throws {
        blocks = try buffer.readWireArray(minimumElementSize: BlockRef.wireSize) { try BlockRef(from: &$0) }
        capability = try buffer.readWireBool() ? try Capability(from: &buffer) : nil
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireArray(blocks) { $1.write(to: &$0) }
        writer.buffer.writeWireBool(capability != nil)
        capability?.encode(into: &writer)
    }
}

/// Asks for a fresh capability: `read` over blocks the job has been given so far, or `write`
/// over blocks it has reserved and not committed (when the one from the allocation expired).
public struct AuthorizeBlocks: JobRequest, Hashable {
    public typealias Response = Capability
    public static let opcode = Opcode.authorizeBlocks

    public var auth: JobAuth
    public var rights: Capability.Rights
    public var blocks: ClosedRange<BlockID>

    public init(auth: JobAuth, rights: Capability.Rights, blocks: ClosedRange<BlockID>) {
        self.auth = auth
        self.rights = rights
        self.blocks = blocks
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        rights = Capability.Rights(rawValue: try buffer.readWire())
        blocks = try buffer.readWireBlockRange()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeInteger(rights.rawValue)
        writer.buffer.writeWireBlockRange(blocks)
    }
}

/// Makes an object visible at `path`, atomically replacing what was there. Each block is one the
/// job reserved with `allocateBlocks`, one the file at `path` already holds (a partial rewrite keeps
/// the blocks it did not change), or a hole (`BlockRef.hole`, read as zeros). Blocks of the old file
/// that the new one does not keep are freed.
public struct CommitObject: JobRequest, Hashable {
    public typealias Response = Committed
    public static let opcode = Opcode.commitObject

    public var auth: JobAuth
    public var path: String
    public var persist: Bool
    public var size: UInt64
    public var blocks: [BlockRef]

    public init(auth: JobAuth, path: String, persist: Bool, size: UInt64, blocks: [BlockRef]) {
        self.auth = auth
        self.path = path
        self.persist = persist
        self.size = size
        self.blocks = blocks
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        persist = try buffer.readWireBool()
        size = try buffer.readWire()
        blocks = try buffer.readWireArray(minimumElementSize: BlockRef.wireSize) { try BlockRef(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireBool(persist)
        writer.buffer.writeInteger(size)
        writer.buffer.writeWireArray(blocks) { $1.write(to: &$0) }
    }
}

/// Returns pending blocks that will not be committed.
public struct AbortBlocks: JobRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.abortBlocks

    public var auth: JobAuth
    public var blocks: [BlockRef]

    public init(auth: JobAuth, blocks: [BlockRef]) {
        self.auth = auth
        self.blocks = blocks
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        blocks = try buffer.readWireArray(minimumElementSize: BlockRef.wireSize) { try BlockRef(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireArray(blocks) { $1.write(to: &$0) }
    }
}

public struct GetServers: WireRequest, Hashable {
    public typealias Response = ServerTable
    public static let opcode = Opcode.getServers
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}
