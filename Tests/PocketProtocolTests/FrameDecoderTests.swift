import NIOCore
import Testing

@testable import PocketProtocol

@Suite struct FrameDecoderTests {
    @Test func framesArriveWholeFromAnySplit() throws {
        let message = PutInline(
            auth: JobAuth(job: 1, token: "t"), path: "k", persist: false, data: ByteBuffer(repeating: 7, count: 5000))
        let bytes = frameBytes(message, opcode: .putInline) + frameBytes(Ping(), requestID: 100)
        for split in [1, 7, 16, 17, 100, bytes.readableBytes - 1] {
            var decoder = FrameDecoder()
            var buffer = bytes.getSlice(at: 0, length: split)!
            var frames: [Frame] = []
            while case .frame(let frame) = decoder.decode(buffer: &buffer) { frames.append(frame) }
            buffer.writeImmutableBuffer(bytes.getSlice(at: split, length: bytes.readableBytes - split)!)
            while case .frame(let frame) = decoder.decode(buffer: &buffer) { frames.append(frame) }
            #expect(frames.count == 2, "split at \(split)")
            #expect(frames.first?.header.opcode == .putInline)
            #expect(frames.last?.header.requestID == 100)
            #expect(try frames.first?.decode(PutInline.self).data == message.data)
        }
    }

    @Test func oversizedFrameIsRejectedAndTheStreamDropped() {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1 << 20))
        buffer.writeInteger(FrameHeader.version)
        buffer.writeInteger(Opcode.writeBlocks.rawValue)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt64(77))
        buffer.writeBytes([UInt8](repeating: 0, count: 100))
        guard case .invalid(let requestID, let opcode, let error) = decoder.decode(buffer: &buffer) else {
            Issue.record("expected a rejection")
            return
        }
        #expect(requestID == 77)
        #expect(opcode == .writeBlocks)
        #expect(error.code == .frameTooLarge)
        var more = frameBytes(Ping())
        #expect(decoder.decode(buffer: &more) == nil, "a poisoned stream yields nothing more")
    }

    @Test func unknownVersionIsRejected() {
        var decoder = FrameDecoder()
        var buffer = frameBytes(Ping())
        buffer.setInteger(UInt8(9), at: 4)
        guard case .invalid(_, _, let error) = decoder.decode(buffer: &buffer) else {
            Issue.record("expected a rejection")
            return
        }
        #expect(error.code == .unsupportedVersion)
    }

    @Test func lengthShorterThanTheHeaderIsRejected() {
        var decoder = FrameDecoder()
        var buffer = frameBytes(Ping())
        buffer.setInteger(UInt32(3), at: 0)
        guard case .invalid(_, _, let error) = decoder.decode(buffer: &buffer) else {
            Issue.record("expected a rejection")
            return
        }
        #expect(error.code == .malformed)
    }

    @Test func partialHeaderWaitsForMore() {
        var decoder = FrameDecoder()
        var buffer = frameBytes(Ping()).getSlice(at: 0, length: 10)!
        #expect(decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 10)
    }

    @Test func largeBlockDataTravelsAsItsOwnBuffer() {
        let data = ByteBuffer(repeating: 1, count: 64 << 10)
        let parts = WireWriter.frame(
            WriteBlocks(jobID: 1, capabilities: [], blocks: [.init(id: 1, data: data)]),
            header: FrameHeader(opcode: .writeBlocks, requestID: 1))
        #expect(parts.contains { $0 == data }, "block bytes are not copied into the header buffer")
        #expect(parts.reduce(0) { $0 + $1.readableBytes } == Int(parts[0].getInteger(at: 0, as: UInt32.self)!) + 4)
    }
}

func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
    var result = lhs
    result.writeImmutableBuffer(rhs)
    return result
}
