import NIOCore
import PocketProtocol
import Testing

/// A view shares its buffer's memory wherever it lies; a slice 16 MiB or more in is a copy.
@Suite struct ByteBufferViewTests {
    /// 20 MiB of zeros with each 64 KiB's offset written at its start.
    static let buffer = {
        var buffer = ByteBuffer(repeating: 0, count: 20 << 20)
        for offset in stride(from: 0, to: 20 << 20, by: 1 << 16) { buffer.setInteger(UInt64(offset), at: offset) }
        return buffer
    }()
    var buffer: ByteBuffer { Self.buffer }

    func address(_ buffer: ByteBuffer) -> UnsafeRawPointer? {
        buffer.withUnsafeReadableBytes { $0.baseAddress }
    }

    @Test func aViewFarIntoABufferSharesItsMemory() throws {
        let offset = 18 << 20
        let view = try #require(buffer.view(at: offset, length: 65536))
        #expect(address(view) == address(buffer)! + offset)
        #expect(view == buffer.getSlice(at: offset, length: 65536))
        // What `view` avoids: NIO copies such a slice.
        #expect(address(buffer.getSlice(at: offset, length: 65536)!) != address(buffer)! + offset)
    }

    @Test func readingViewsWalksTheBuffer() throws {
        var rest = buffer
        var pieces: [ByteBuffer] = []
        while rest.readableBytes > 0 {
            let piece = rest.readView(length: min(3 << 20, rest.readableBytes))
            pieces.append(try #require(piece))
        }
        var joined = ByteBuffer()
        for var piece in pieces { joined.writeBuffer(&piece) }
        #expect(joined == buffer)
    }

    @Test func aViewOutsideTheReadableBytesIsNil() {
        var small = ByteBuffer(bytes: [1, 2, 3, 4])
        #expect(small.view(at: 2, length: 3) == nil)
        #expect(small.view(at: 0, length: -1) == nil)
        small.moveReaderIndex(forwardBy: 2)
        #expect(small.view(at: 1, length: 1) == nil)
        #expect(small.view(at: 2, length: 2) == ByteBuffer(bytes: [3, 4]))
        #expect(small.readView(length: 3) == nil)
    }
}
