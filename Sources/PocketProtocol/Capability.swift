import NIOCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Permission to touch a range of one job's blocks until a deadline, signed with the key the
/// cluster shares (`PocketSecurity`). Metadata servers hand capabilities to a job's clients with
/// its allocations and reads; storage servers act on a block only with one that covers it, so a
/// client that guesses block ids, or another job's, gets nothing. The controller signs
/// `control` capabilities for what it asks of metadata servers.
public struct Capability: Hashable, Sendable, WireMessage {
    public struct Rights: OptionSet, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        public static let read = Rights(rawValue: 1)
        public static let write = Rights(rawValue: 2)
        /// Freeing blocks: metadata servers only.
        public static let free = Rights(rawValue: 4)
        /// Assigning, dropping and re-placing jobs, and server tables: the controller only.
        public static let control = Rights(rawValue: 8)
        static let all: Rights = [.read, .write, .free, .control]

        public var description: String {
            [(Rights.read, "read"), (.write, "write"), (.free, "free"), (.control, "control")]
                .filter { contains($0.0) }.map(\.1).joined(separator: "+")
        }
    }

    /// Every block id: for capabilities not about particular blocks.
    public static let everyBlock: ClosedRange<BlockID> = 0...BlockID.max

    public var job: JobID
    public var rights: Rights
    public var blocks: ClosedRange<BlockID>
    /// Seconds since the Unix epoch; refused after.
    public var expiry: Int64
    /// HMAC-SHA256 of `signedBytes`, first 16 bytes.
    public var mac: UInt128

    public init(job: JobID, rights: Rights, blocks: ClosedRange<BlockID>, expiry: Int64, mac: UInt128 = 0) {
        self.job = job
        self.rights = rights
        self.blocks = blocks
        self.expiry = expiry
        self.mac = mac
    }

    public func covers(_ id: BlockID, _ needed: Rights) -> Bool {
        blocks.contains(id) && rights.isSuperset(of: needed)
    }

    /// Whether it stays valid for at least `margin` more seconds.
    public func isUsable(margin: Int64, now: Int64 = Capability.now()) -> Bool {
        expiry - now > margin
    }

    /// Seconds since the Unix epoch, the clock expiries are read against.
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }

    /// What the MAC covers: a version tag, then every field in wire order.
    public var signedBytes: [UInt8] {
        var bytes: [UInt8] = []
        withSignedBytes { bytes = Array($0) }
        return bytes
    }

    /// Calls `body` with `signedBytes`, laid out in memory of the stack: MACs are computed on every
    /// block request, and building an array for each cost more than the hashing. (Not generic: a
    /// generic function called from another module runs unspecialised, looking up type metadata.)
    public func withSignedBytes(_ body: (UnsafeRawBufferPointer) -> Void) {
        let tag = Self.signatureTag
        withUnsafeTemporaryAllocation(byteCount: tag.count + 33, alignment: 8) { memory in
            tag.withUnsafeBytes { memory.copyMemory(from: $0) }
            var offset = tag.count
            func append<T: FixedWidthInteger>(_ value: T) {
                memory.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
                offset += MemoryLayout<T>.size
            }
            append(job)
            append(rights.rawValue)
            append(blocks.lowerBound)
            append(blocks.upperBound)
            append(expiry)
            body(UnsafeRawBufferPointer(memory))
        }
    }

    private static let signatureTag: [UInt8] = Array("pocket-capability-v1".utf8)

    static let wireSize = 49

    public init(from buffer: inout ByteBuffer) throws {
        job = try buffer.readWire()
        rights = Rights(rawValue: try buffer.readWire())
        guard Rights.all.isSuperset(of: rights) else {
            throw PocketError.malformed("unknown rights \(rights.rawValue)")
        }
        blocks = try buffer.readWireBlockRange()
        expiry = try buffer.readWire()
        mac = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(job)
        writer.buffer.writeInteger(rights.rawValue)
        writer.buffer.writeWireBlockRange(blocks)
        writer.buffer.writeInteger(expiry)
        writer.buffer.writeInteger(mac)
    }
}

extension ByteBuffer {
    /// A closed range of block ids: first and last, first not after last.
    mutating func readWireBlockRange() throws -> ClosedRange<BlockID> {
        let lower: BlockID = try readWire()
        let upper: BlockID = try readWire()
        guard lower <= upper else { throw PocketError.malformed("empty block range \(lower)...\(upper)") }
        return lower...upper
    }

    mutating func writeWireBlockRange(_ range: ClosedRange<BlockID>) {
        writeInteger(range.lowerBound)
        writeInteger(range.upperBound)
    }

    /// Capabilities attached to a block request; a handful at most.
    mutating func readCapabilities() throws -> [Capability] {
        let capabilities = try readWireArray(minimumElementSize: Capability.wireSize) { try Capability(from: &$0) }
        guard capabilities.count <= Capability.maxPerRequest else {
            throw PocketError.malformed("\(capabilities.count) capabilities (at most \(Capability.maxPerRequest))")
        }
        return capabilities
    }
}

extension WireWriter {
    mutating func writeCapabilities(_ capabilities: [Capability]) {
        buffer.writeInteger(UInt32(capabilities.count))
        for capability in capabilities { capability.encode(into: &self) }
    }
}

extension Capability {
    /// Bounds the signatures a storage server checks per request.
    public static let maxPerRequest = 64
}
