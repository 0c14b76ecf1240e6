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
public struct PutInline: WireRequest {
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

public struct GetObject: WireRequest, Hashable {
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
public struct ObjectLocation: WireMessage {
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
public struct AllocateBlocks: WireRequest, Hashable {
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
public struct CommitObject: WireRequest, Hashable {
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
public struct AbortBlocks: WireRequest, Hashable {
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

public struct Stat: WireRequest, Hashable {
    public typealias Response = EntryInfo
    public static let opcode = Opcode.stat

    public var auth: JobAuth
    public var path: String

    public init(auth: JobAuth, path: String) {
        self.auth = auth
        self.path = path
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
    }
}

/// Lists a directory's entries whose names start with `prefix`, sorted by name.
public struct List: WireRequest, Hashable {
    public typealias Response = EntryList
    public static let opcode = Opcode.list

    public var auth: JobAuth
    public var path: String
    public var prefix: String

    public init(auth: JobAuth, path: String, prefix: String = "") {
        self.auth = auth
        self.path = path
        self.prefix = prefix
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        prefix = try buffer.readWireString()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireString(prefix)
    }
}

public struct EntryList: WireMessage, Hashable {
    public var entries: [EntryInfo]
    public init(entries: [EntryInfo]) { self.entries = entries }

    public init(from buffer: inout ByteBuffer) throws {
        entries = try buffer.readWireArray(minimumElementSize: 40) { try EntryInfo(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(UInt32(entries.count))
        for entry in entries { entry.encode(into: &writer) }
    }
}

public struct Delete: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.delete

    /// What the caller expects to remove, as unlink(2) and rmdir(2) do.
    public enum Kind: UInt8, Sendable {
        case any = 0
        /// Anything but a directory (`isDirectory` otherwise).
        case nonDirectory = 1
        /// A directory (`notDirectory` otherwise).
        case directory = 2
    }

    public var auth: JobAuth
    public var path: String
    /// Delete a directory with everything in it; without it only empty directories go.
    public var recursive: Bool
    public var kind: Kind

    public init(auth: JobAuth, path: String, recursive: Bool = false, kind: Kind = .any) {
        self.auth = auth
        self.path = path
        self.recursive = recursive
        self.kind = kind
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        recursive = try buffer.readWireBool()
        kind = try buffer.readWireEnum(Kind.self)
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireBool(recursive)
        writer.buffer.writeInteger(kind.rawValue)
    }
}

public struct Rename: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.rename

    public var auth: JobAuth
    public var from: String
    public var to: String
    /// Fail with `alreadyExists` instead of replacing (RENAME_NOREPLACE).
    public var noReplace: Bool

    public init(auth: JobAuth, from: String, to: String, noReplace: Bool = false) {
        self.auth = auth
        self.from = from
        self.to = to
        self.noReplace = noReplace
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        from = try buffer.readWireString()
        to = try buffer.readWireString()
        noReplace = try buffer.readWireBool()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(from)
        writer.buffer.writeWireString(to)
        writer.buffer.writeWireBool(noReplace)
    }
}

public struct MakeDirectory: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.makeDirectory

    public var auth: JobAuth
    public var path: String
    /// Create missing parents, and succeed if the directory exists.
    public var parents: Bool

    public init(auth: JobAuth, path: String, parents: Bool = false) {
        self.auth = auth
        self.path = path
        self.parents = parents
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        parents = try buffer.readWireBool()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireBool(parents)
    }
}

public struct GetServers: WireRequest, Hashable {
    public typealias Response = ServerTable
    public static let opcode = Opcode.getServers
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}

/// Creates an empty regular file (parents must exist). Without `exclusive`, an existing file is
/// left as it is and returned.
public struct Create: WireRequest, Hashable {
    public typealias Response = EntryInfo
    public static let opcode = Opcode.create

    public var auth: JobAuth
    public var path: String
    public var mode: UInt32
    public var exclusive: Bool

    public init(auth: JobAuth, path: String, mode: UInt32 = 0o644, exclusive: Bool = true) {
        self.auth = auth
        self.path = path
        self.mode = mode
        self.exclusive = exclusive
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        mode = try buffer.readWire()
        exclusive = try buffer.readWireBool()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeInteger(mode)
        writer.buffer.writeWireBool(exclusive)
    }
}

public struct MakeSymlink: WireRequest, Hashable {
    public typealias Response = EntryInfo
    public static let opcode = Opcode.makeSymlink

    public var auth: JobAuth
    public var path: String
    public var target: String

    public init(auth: JobAuth, path: String, target: String) {
        self.auth = auth
        self.path = path
        self.target = target
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        target = try buffer.readWireString()
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireString(target)
    }
}

/// Changes an entry's permission bits and modification time (chmod, utimens). Sizes change by
/// committing a new layout.
public struct SetAttributes: WireRequest, Hashable {
    public typealias Response = EntryInfo
    public static let opcode = Opcode.setAttributes

    public var auth: JobAuth
    public var path: String
    public var mode: UInt32?
    /// Nanoseconds since the epoch.
    public var modified: Int64?

    public init(auth: JobAuth, path: String, mode: UInt32? = nil, modified: Int64? = nil) {
        self.auth = auth
        self.path = path
        self.mode = mode
        self.modified = modified
    }

    public init(from buffer: inout ByteBuffer) throws {
        auth = try JobAuth(from: &buffer)
        path = try buffer.readWireString()
        mode = try buffer.readWireBool() ? try buffer.readWire() : nil
        modified = try buffer.readWireBool() ? try buffer.readWire() : nil
    }

    public func encode(into writer: inout WireWriter) {
        auth.write(to: &writer.buffer)
        writer.buffer.writeWireString(path)
        writer.buffer.writeWireBool(mode != nil)
        if let mode { writer.buffer.writeInteger(mode) }
        writer.buffer.writeWireBool(modified != nil)
        if let modified { writer.buffer.writeInteger(modified) }
    }
}
