import NIOCore

/// A message body: encoded into a frame, decoded from a frame's payload.
public protocol WireMessage: Sendable {
    init(from buffer: inout ByteBuffer) throws
    func encode(into writer: inout WireWriter)
}

/// A request, with the opcode it travels under and the message its response carries.
public protocol WireRequest: WireMessage {
    associatedtype Response: WireMessage
    static var opcode: Opcode { get }
}

/// The empty message: requests without arguments and responses without results.
public struct Empty: WireMessage, Hashable {
    public init() {}
    public init(from buffer: inout ByteBuffer) throws {}
    public func encode(into writer: inout WireWriter) {}
}

/// Limits a decoder enforces before trusting a length it read from the wire.
public enum WireLimits {
    public static let maxStringBytes = 4096
    public static let maxBytesField = 64 << 20
}

extension ByteBuffer {
    /// The `length` bytes at `index`, sharing this buffer's memory however far into it they lie.
    /// `getSlice` and `readSlice` copy bytes that start 16 MiB or more into a buffer's memory (a
    /// slice keeps its start in 24 bits): three quarters of a 64 MiB put, a tenth of its client's time.
    public func view(at index: Int, length: Int) -> ByteBuffer? {
        guard index >= readerIndex, length >= 0, index <= writerIndex - length else { return nil }
        var view = self
        view.moveWriterIndex(to: index + length)
        view.moveReaderIndex(to: index)
        return view
    }

    /// Like `readSlice`, as a `view` of this buffer's memory.
    public mutating func readView(length: Int) -> ByteBuffer? {
        guard let view = view(at: readerIndex, length: length) else { return nil }
        moveReaderIndex(forwardBy: length)
        return view
    }
}

extension ByteBuffer {
    @inlinable
    public mutating func readWire<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        guard let value = readInteger(as: T.self) else {
            throw PocketError.malformed("truncated: expected \(MemoryLayout<T>.size)-byte integer")
        }
        return value
    }

    public mutating func readWireBool() throws -> Bool {
        switch try readWire(UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw PocketError.malformed("bad boolean \(other)")
        }
    }

    public mutating func writeWireBool(_ value: Bool) {
        writeInteger(UInt8(value ? 1 : 0))
    }

    public mutating func readWireDouble() throws -> Double {
        let value = Double(bitPattern: try readWire(UInt64.self))
        guard value.isFinite else { throw PocketError.malformed("non-finite number") }
        return value
    }

    public mutating func writeWireDouble(_ value: Double) {
        writeInteger(value.bitPattern)
    }

    /// u16 length, then UTF-8.
    public mutating func readWireString() throws -> String {
        let length = Int(try readWire(UInt16.self))
        guard length <= WireLimits.maxStringBytes else { throw PocketError.malformed("string of \(length) bytes") }
        guard let bytes = readSlice(length: length) else { throw PocketError.malformed("truncated string") }
        guard let string = bytes.getString(at: bytes.readerIndex, length: length),
            string.utf8.count == length, !string.utf8.contains(0)
        else { throw PocketError.malformed("string is not valid UTF-8") }
        return string
    }

    public mutating func writeWireString(_ value: String) {
        let bytes = value.utf8.prefix(WireLimits.maxStringBytes)
        writeInteger(UInt16(bytes.count))
        writeBytes(bytes)
    }

    /// u32 length, then raw bytes, returned as a slice of this buffer (no copy).
    public mutating func readWireBytes() throws -> ByteBuffer {
        let length = Int(try readWire(UInt32.self))
        guard length <= WireLimits.maxBytesField, let bytes = readSlice(length: length) else {
            throw PocketError.malformed("bytes field of \(length) bytes, \(readableBytes) left")
        }
        return bytes
    }

    /// An element count, checked against the bytes left so a forged count cannot make us allocate.
    public mutating func readWireCount(minimumElementSize: Int) throws -> Int {
        let count = Int(try readWire(UInt32.self))
        guard count * max(minimumElementSize, 1) <= readableBytes else {
            throw PocketError.malformed("count \(count) exceeds the \(readableBytes) bytes left")
        }
        return count
    }

    public mutating func readWireEnum<E: RawRepresentable>(_: E.Type) throws -> E where E.RawValue == UInt8 {
        let raw = try readWire(UInt8.self)
        guard let value = E(rawValue: raw) else { throw PocketError.malformed("bad \(E.self) value \(raw)") }
        return value
    }

    public mutating func readWireArray<T>(
        minimumElementSize: Int, _ element: (inout ByteBuffer) throws -> T
    ) throws -> [T] {
        let count = try readWireCount(minimumElementSize: minimumElementSize)
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try element(&self)) }
        return result
    }

    public mutating func writeWireArray<T>(_ values: [T], _ element: (inout ByteBuffer, T) -> Void) {
        writeInteger(UInt32(values.count))
        for value in values { element(&self, value) }
    }
}

extension WireWriter {
    /// u32 length, then the bytes, zero-copy when large.
    public mutating func writeBytes(_ data: ByteBuffer) {
        buffer.writeInteger(UInt32(data.readableBytes))
        appendRaw(data)
    }
}
