import NIOCore
import Testing

@testable import PocketBench

/// `pocket bench` checks reads against a repeating pattern: a block read back at the wrong offset,
/// from the wrong object, or with one byte changed does not pass.
@Suite struct BenchPatternTests {
    let block = 65536
    let size = 20 << 20

    @Test func blocksMatchOnlyWhereTheyBelong() {
        let pattern = Bench.pattern(index: 3, size: size)
        let object = Bench.repeated(pattern, size: size)
        #expect(object.readableBytes == size)
        let blocks = size / block
        for index in 0..<blocks {
            let bytes = object.getSlice(at: index * block, length: block)!
            #expect(Bench.matches(bytes, at: index * block, of: pattern))
            // Elsewhere in the object, including a period on, and in another object: no match.
            for other in [index + 1, index + 16, index + blocks / 2] where other < blocks {
                #expect(!Bench.matches(bytes, at: other * block, of: pattern), "block \(index) at \(other)")
            }
            #expect(!Bench.matches(bytes, at: index * block, of: Bench.pattern(index: 4, size: size)))
        }
    }

    @Test func oneChangedByteFails() {
        let pattern = Bench.pattern(index: 0, size: size)
        var bytes = Bench.repeated(pattern, size: size).getSlice(at: 3 << 20, length: 1 << 20)!
        #expect(Bench.matches(bytes, at: 3 << 20, of: pattern))
        bytes.setInteger(bytes.getInteger(at: 77_777, as: UInt8.self)! ^ 1, at: 77_777)
        #expect(!Bench.matches(bytes, at: 3 << 20, of: pattern))
    }
}
