import NIOCore

// Messages served by storage servers. Block data travels as raw bytes after a length.

public struct WriteBlocks: WireRequest, Hashable {
    public typealias Response = Empty
    public static let opcode = Opcode.writeBlocks

    public struct Block: Sendable, Hashable {
        public var id: BlockID
        public var data: ByteBuffer
        public init(id: BlockID, data: ByteBuffer) {
            self.id = id
            self.data = data
        }
    }

    public var jobID: JobID
    /// Write capabilities covering every block.
    public var capabilities: [Capability]
    public var blocks: [Block]

    public init(jobID: JobID, capabilities: [Capability], blocks: [Block]) {
        self.jobID = jobID
        self.capabilities = capabilities
        self.blocks = blocks
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        capabilities = try buffer.readCapabilities()
        blocks = try buffer.readWireArray(minimumElementSize: 12) { buffer in
            Block(id: try buffer.readWire(), data: try buffer.readWireBytes())
        }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        writer.writeCapabilities(capabilities)
        writer.buffer.writeInteger(UInt32(blocks.count))
        for block in blocks {
            writer.buffer.writeInteger(block.id)
            writer.writeBytes(block.data)
        }
    }
}

/// A byte range of a block; `length == .max` reads to the block's end.
public struct BlockRange: Hashable, Sendable {
    public var id: BlockID
    public var offset: UInt32
    public var length: UInt32

    public init(id: BlockID, offset: UInt32 = 0, length: UInt32 = .max) {
        self.id = id
        self.offset = offset
        self.length = length
    }
}

public struct ReadBlocks: WireRequest, Hashable {
    public typealias Response = BlockData
    public static let opcode = Opcode.readBlocks

    public var jobID: JobID
    /// Read capabilities covering every block.
    public var capabilities: [Capability]
    public var ranges: [BlockRange]

    public init(jobID: JobID, capabilities: [Capability], ranges: [BlockRange]) {
        self.jobID = jobID
        self.capabilities = capabilities
        self.ranges = ranges
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        capabilities = try buffer.readCapabilities()
        ranges = try buffer.readWireArray(minimumElementSize: 16) { buffer in
            BlockRange(id: try buffer.readWire(), offset: try buffer.readWire(), length: try buffer.readWire())
        }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        writer.writeCapabilities(capabilities)
        writer.buffer.writeWireArray(ranges) { buffer, range in
            buffer.writeInteger(range.id)
            buffer.writeInteger(range.offset)
            buffer.writeInteger(range.length)
        }
    }
}

/// The bytes of each requested range, in request order.
public struct BlockData: WireMessage, Hashable {
    public var blocks: [ByteBuffer]
    public init(blocks: [ByteBuffer]) { self.blocks = blocks }

    public init(from buffer: inout ByteBuffer) throws {
        blocks = try buffer.readWireArray(minimumElementSize: 4) { try $0.readWireBytes() }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(UInt32(blocks.count))
        for block in blocks { writer.writeBytes(block) }
    }
}

public struct FreeBlocks: WireRequest, Hashable {
    public typealias Response = FreeReply
    public static let opcode = Opcode.freeBlocks

    public var jobID: JobID
    /// A `free` capability covering every id.
    public var capability: Capability
    public var ids: [BlockID]

    public init(jobID: JobID, capability: Capability, ids: [BlockID]) {
        self.jobID = jobID
        self.capability = capability
        self.ids = ids
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        capability = try Capability(from: &buffer)
        ids = try buffer.readWireArray(minimumElementSize: 8) { try $0.readWire() }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        capability.encode(into: &writer)
        writer.buffer.writeWireArray(ids) { $0.writeInteger($1) }
    }
}

/// Frees every block of a job on one server.
public struct FreeJob: WireRequest, Hashable {
    public typealias Response = FreeReply
    public static let opcode = Opcode.freeJob

    public var jobID: JobID
    /// A `free` capability for every block of the job.
    public var capability: Capability

    public init(jobID: JobID, capability: Capability) {
        self.jobID = jobID
        self.capability = capability
    }

    public init(from buffer: inout ByteBuffer) throws {
        jobID = try buffer.readWire()
        capability = try Capability(from: &buffer)
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(jobID)
        capability.encode(into: &writer)
    }
}

public struct FreeReply: WireMessage, Hashable {
    public var blocks: UInt64
    public var bytes: UInt64

    public init(blocks: UInt64, bytes: UInt64) {
        self.blocks = blocks
        self.bytes = bytes
    }

    public init(from buffer: inout ByteBuffer) throws {
        blocks = try buffer.readWire()
        bytes = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(blocks)
        writer.buffer.writeInteger(bytes)
    }
}

public struct StorageStats: WireRequest, Hashable {
    public typealias Response = ServerStats
    public static let opcode = Opcode.storageStats
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}
