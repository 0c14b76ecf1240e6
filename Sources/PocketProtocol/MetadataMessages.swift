import NIOCore

// Messages served by metadata servers: first those the controller sends, then those clients send.

public struct AssignJob: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.assignJob

    public var jobID: JobID
    public var name: String
    public var token: String
    public var weightMap: WeightMap

    public init(jobID: JobID, name: String, token: String, weightMap: WeightMap) {
        self.jobID = jobID
        self.name = name
        self.token = token
        self.weightMap = weightMap
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        name = try buffer.readWireString()
        token = try buffer.readWireString()
        weightMap = try WeightMap(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        writer.buffer.writeWireString(name)
        writer.buffer.writeWireString(token)
        weightMap.encode(into: &writer)
    }
}

/// Ends a job on its metadata server: every block not marked persist-after-job is freed.
public struct DropJob: WireRequest, Hashable {
    public typealias Response = DropJobReply
    public static let opcode = Opcode.dropJob

    public var jobID: JobID
    public init(jobID: JobID) { self.jobID = jobID }
    public init(from buffer: inout ByteBuffer) throws { jobID = try buffer.readWire() }
    public func encode(into writer: inout WireWriter) { writer.buffer.writeInteger(jobID) }
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

    public var servers: [StorageServerEntry]
    public init(servers: [StorageServerEntry]) { self.servers = servers }

    public init(from buffer: inout ByteBuffer) throws {
        servers = try buffer.readWireArray(minimumElementSize: 16) { try StorageServerEntry(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireArray(servers) { $1.write(to: &$0) }
    }
}

public struct SetWeightMap: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.setWeightMap

    public var jobID: JobID
    public var weightMap: WeightMap

    public init(jobID: JobID, weightMap: WeightMap) {
        self.jobID = jobID
        self.weightMap = weightMap
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        weightMap = try WeightMap(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        weightMap.encode(into: &writer)
    }
}

/// Stores a small object whole on the metadata server: one round trip.
public struct PutInline: JobRequest, Hashable {
    public typealias Response = Empty
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

    public init(size: UInt64, blockSize: UInt32, inline: ByteBuffer?, blocks: [BlockRef]) {
        self.size = size
        self.blockSize = blockSize
        self.inline = inline
        self.blocks = blocks
    }

    public init(from buffer: inout ByteBuffer) throws {
        size = try buffer.readWire()
        blockSize = try buffer.readWire()
        inline = try buffer.readWireBool() ? try buffer.readWireBytes() : nil
        blocks = try buffer.readWireArray(minimumElementSize: BlockRef.wireSize) { try BlockRef(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(size)
        writer.buffer.writeInteger(blockSize)
        writer.buffer.writeWireBool(inline != nil)
        if let inline { writer.writeBytes(inline) }
        writer.buffer.writeWireArray(blocks) { $1.write(to: &$0) }
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
    public init(blocks: [BlockRef]) { self.blocks = blocks }

    public init(from buffer: inout ByteBuffer) throws {
        blocks = try buffer.readWireArray(minimumElementSize: BlockRef.wireSize) { try BlockRef(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeWireArray(blocks) { $1.write(to: &$0) }
    }
}

/// Makes an object visible at `path`, atomically replacing what was there. Each block is one the
/// job reserved with `allocateBlocks`, one the file at `path` already holds (a partial rewrite keeps
/// the blocks it did not change), or a hole (`BlockRef.hole`, read as zeros). Blocks of the old file
/// that the new one does not keep are freed.
public struct CommitObject: JobRequest, Hashable {
    public typealias Response = Empty
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
