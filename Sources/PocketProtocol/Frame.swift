import NIOCore

/// Frame layout (big-endian):
///
///     0  u32 length      bytes after this field: 12 + payload
///     4  u8  version     1
///     5  u8  opcode
///     6  u8  flags       bit 0: response
///     7  u8  status      0 = ok, else a PocketError.Code (responses only)
///     8  u64 request id  chosen by the requester, echoed in the response
///     16 payload
public struct FrameHeader: Hashable, Sendable {
    public static let size = 16
    public static let version: UInt8 = 1
    /// Header bytes counted by the length field (everything after it).
    static let countedSize = size - 4

    public var opcode: Opcode
    public var isResponse: Bool
    public var status: UInt8
    public var requestID: UInt64

    public init(opcode: Opcode, isResponse: Bool = false, status: UInt8 = 0, requestID: UInt64) {
        self.opcode = opcode
        self.isResponse = isResponse
        self.status = status
        self.requestID = requestID
    }
}

public struct Frame: Sendable {
    public var header: FrameHeader
    public var payload: ByteBuffer

    public init(header: FrameHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }

    /// Decodes the payload as `M`, requiring that it is consumed exactly.
    public func decode<M: WireMessage>(_: M.Type = M.self) throws -> M {
        var buffer = payload
        let message = try M(from: &buffer)
        guard buffer.readableBytes == 0 else {
            throw PocketError.malformed("\(buffer.readableBytes) trailing bytes after \(M.self)")
        }
        return message
    }

    /// The error an error response carries, or nil for a success.
    public var error: PocketError? {
        guard header.status != 0 else { return nil }
        var buffer = payload
        let message = (try? buffer.readWireString()) ?? ""
        return PocketError(PocketError.Code(status: header.status), message)
    }
}

/// Builds an outgoing frame as a list of buffers: small fields are packed into one buffer, block data
/// is appended as its own buffer so it reaches the socket without being copied (NIO gathers them).
public struct WireWriter {
    /// Raw data at least this big is carried as its own buffer instead of being copied.
    static let zeroCopyThreshold = 4096

    public private(set) var parts: [ByteBuffer] = []
    public var buffer: ByteBuffer
    private let allocator: ByteBufferAllocator

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator(), header: FrameHeader, capacity: Int = 256) {
        self.allocator = allocator
        buffer = allocator.buffer(capacity: capacity + FrameHeader.size)
        buffer.writeInteger(UInt32(0))  // length, patched in `finish`
        buffer.writeInteger(FrameHeader.version)
        buffer.writeInteger(header.opcode.rawValue)
        buffer.writeInteger(UInt8(header.isResponse ? 1 : 0))
        buffer.writeInteger(header.status)
        buffer.writeInteger(header.requestID)
    }

    /// Appends raw bytes (block data) without a length prefix.
    public mutating func appendRaw(_ data: ByteBuffer) {
        if data.readableBytes < Self.zeroCopyThreshold {
            var data = data
            buffer.writeBuffer(&data)
            return
        }
        parts.append(buffer)
        parts.append(data)
        buffer = allocator.buffer(capacity: 64)
    }

    /// The buffers to write, in order, with the length field filled in.
    public consuming func finish() -> [ByteBuffer] {
        var all = parts
        all.append(buffer)
        let total = all.reduce(0) { $0 + $1.readableBytes }
        all[0].setInteger(UInt32(total - 4), at: all[0].readerIndex)
        return all.filter { $0.readableBytes > 0 }
    }

    /// A complete frame carrying `message`.
    public static func frame<M: WireMessage>(
        _ message: M, header: FrameHeader, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> [ByteBuffer] {
        var writer = WireWriter(allocator: allocator, header: header)
        message.encode(into: &writer)
        return writer.finish()
    }

    /// An error response for `requestID`.
    public static func errorFrame(
        _ error: PocketError, opcode: Opcode, requestID: UInt64,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> [ByteBuffer] {
        let header = FrameHeader(opcode: opcode, isResponse: true, status: error.code.rawValue, requestID: requestID)
        var writer = WireWriter(allocator: allocator, header: header)
        writer.buffer.writeWireString(String(error.message.prefix(512)))
        return writer.finish()
    }
}

/// What the decoder yields: a frame, or a frame it could not accept, after which the stream is
/// out of step and the connection must be closed.
public enum FrameEvent: Sendable {
    case frame(Frame)
    case invalid(requestID: UInt64, opcode: Opcode, PocketError)
}

/// Splits a byte stream into frames. Oversized frames and unknown versions are reported once as
/// `.invalid`; everything after them is discarded, since the stream can no longer be trusted.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = FrameEvent

    public static let defaultMaxFrameSize = 16 << 20 + 64 << 10

    private let maxFrameSize: Int
    private var poisoned = false

    public init(maxFrameSize: Int = FrameDecoder.defaultMaxFrameSize) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch decode(buffer: &buffer) {
        case .some(let event):
            context.fireChannelRead(wrapInboundOut(event))
            return .continue
        case .none:
            return .needMoreData
        }
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while let event = decode(buffer: &buffer) {
            context.fireChannelRead(wrapInboundOut(event))
        }
        buffer.clear()
        return .needMoreData
    }

    /// The pure decoding step, testable without a channel.
    public mutating func decode(buffer: inout ByteBuffer) -> FrameEvent? {
        if poisoned {
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        }
        guard buffer.readableBytes >= FrameHeader.size,
            let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
            let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self),
            let opcode = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self),
            let requestID = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt64.self)
        else { return nil }

        let reject: PocketError?
        if version != FrameHeader.version {
            reject = PocketError(.unsupportedVersion, "version \(version), this server speaks \(FrameHeader.version)")
        } else if Int(length) < FrameHeader.countedSize {
            reject = .malformed("frame length \(length) is shorter than the header")
        } else if Int(length) + 4 > maxFrameSize {
            reject = PocketError(.frameTooLarge, "\(Int(length) + 4) bytes, limit \(maxFrameSize)")
        } else {
            reject = nil
        }
        if let reject {
            poisoned = true
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return .invalid(requestID: requestID, opcode: Opcode(rawValue: opcode), reject)
        }
        guard buffer.readableBytes >= Int(length) + 4 else { return nil }

        let flags = buffer.getInteger(at: buffer.readerIndex + 6, as: UInt8.self)!
        let status = buffer.getInteger(at: buffer.readerIndex + 7, as: UInt8.self)!
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        let payload = buffer.readSlice(length: Int(length) - FrameHeader.countedSize)!
        let header = FrameHeader(
            opcode: Opcode(rawValue: opcode), isResponse: flags & 1 != 0, status: status, requestID: requestID)
        return .frame(Frame(header: header, payload: payload))
    }
}
