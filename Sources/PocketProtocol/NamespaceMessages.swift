import NIOCore

// Namespace operations clients send to metadata servers: names, directories, attributes.

public struct Stat: JobRequest, Hashable {
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
public struct List: JobRequest, Hashable {
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

public struct Delete: JobRequest, Hashable {
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

public struct Rename: JobRequest, Hashable {
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

public struct MakeDirectory: JobRequest, Hashable {
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

/// Creates an empty regular file (parents must exist). Without `exclusive`, an existing file is
/// left as it is and returned.
public struct Create: JobRequest, Hashable {
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

public struct MakeSymlink: JobRequest, Hashable {
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
public struct SetAttributes: JobRequest, Hashable {
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
