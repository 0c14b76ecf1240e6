import NIOCore
import NIOPosix
import PocketClient
import PocketProtocol
import Synchronization

/// `pocket bench`: many put or get operations of one size from concurrent tasks, on a job of its own.
public enum Bench {
    public enum Operation: String, Sendable, CaseIterable {
        case put, get
    }

    public struct Options: Sendable {
        public var operation: Operation = .put
        public var size = 1024
        public var count = 10_000
        public var concurrency = 1
        /// Run this long instead of `count` operations, cycling over `count` objects.
        public var duration: Duration?
        /// Operations started per second at most: operation i starts no earlier than i / rate.
        public var rate: Double?
        /// Distinct keys the operations cycle over, so puts replace objects (as `redis-benchmark`'s
        /// SET replaces one key); by default every operation up to 1000 has a key of its own.
        public var keys: Int?

        public init() {}
    }

    public struct Result: Sendable, Codable {
        public var op: String
        public var size: Int
        public var count: Int
        public var concurrency: Int
        public var ops_per_s: Double
        public var bytes_per_s: Double
        public var p50_us: Double
        public var p99_us: Double
        public var max_us: Double
        public var seconds: Double
    }

    /// Objects a get run prepares and reads in turn: enough to not read one object only, few
    /// enough to stay within about 1 GiB.
    static func preparedObjects(_ options: Options) -> Int {
        max(1, min(options.count, 1000, (1 << 30) / max(options.size, 1)))
    }

    /// The bytes object `index` repeats: xorshift output, one period long at most. The period is
    /// long enough that no two 64 KiB blocks of an object up to 1 GiB hold the same bytes (block
    /// j and k match only when 131,073 divides j - k), and short enough that checking a large
    /// read compares it with bytes in the processor's cache: checking 64 MiB gets against
    /// whole copies of the objects read them from memory, a tenth of the machine's time.
    static func pattern(index: Int, size: Int) -> ByteBuffer {
        contents(size: min(size, period), seed: UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15)
    }

    static let period = (1 << 20) + 8

    /// `size` bytes of `pattern`, repeated.
    static func repeated(_ pattern: ByteBuffer, size: Int) -> ByteBuffer {
        var object = ByteBufferAllocator().buffer(capacity: size)
        while object.readableBytes < size {
            object.writeImmutableBuffer(
                pattern.getSlice(
                    at: pattern.readerIndex, length: min(pattern.readableBytes, size - object.readableBytes))!)
        }
        return object
    }

    /// Whether `chunk` holds the bytes at `offset` of an object that repeats `pattern`.
    static func matches(_ chunk: ByteBuffer, at offset: Int, of pattern: ByteBuffer) -> Bool {
        var checked = 0
        while checked < chunk.readableBytes {
            let at = (offset + checked) % pattern.readableBytes
            let length = min(chunk.readableBytes - checked, pattern.readableBytes - at)
            guard
                chunk.getSlice(at: chunk.readerIndex + checked, length: length)
                    == pattern.getSlice(at: pattern.readerIndex + at, length: length)
            else { return false }
            checked += length
        }
        return true
    }

    /// `size` bytes of xorshift output from `seed`: cheap to make, different for every seed.
    public static func contents(size: Int, seed: UInt64) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        var state = seed | 1
        // Straight into the buffer's memory: a write call per word is slow in debug builds.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for word in 0..<(size / 8) {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                words[word] = state
            }
            for byte in (size / 8 * 8)..<size { raw[byte] = UInt8(truncatingIfNeeded: state) }
            return size
        }
        return buffer
    }

    public static func run(_ options: Options, job: PocketJob) async throws -> Result {
        let objects = options.keys ?? (options.operation == .get ? preparedObjects(options) : min(options.count, 1000))
        let patterns = (0..<min(objects, 64)).map { pattern(index: $0, size: options.size) }
        let payloads = patterns.map { repeated($0, size: options.size) }
        if options.operation == .get {
            for index in 0..<objects {
                try await job.put("bench/\(index)", payloads[index % payloads.count])
            }
        }
        let next = Ticket()
        let start = ContinuousClock.now
        let deadline = options.duration.map { start + $0 }
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for worker in 0..<max(options.concurrency, 1) {
                group.addTask {
                    // One worker stays put: moved, a 64 MiB get measured ~10% slower.
                    if options.concurrency > 1 { await onLoop(worker) }
                    var mine: [Duration] = []
                    while true {
                        let index = next.take()
                        if let deadline {
                            guard ContinuousClock.now < deadline else { break }
                        } else {
                            guard index < options.count else { break }
                        }
                        if let rate = options.rate {
                            try await Task.sleep(until: start + .microseconds(Int64(Double(index) / rate * 1e6)))
                        }
                        let key = "bench/\(index % objects)"
                        let expected = payloads[(index % objects) % payloads.count]
                        let expectedPattern = patterns[(index % objects) % patterns.count]
                        let began = ContinuousClock.now
                        switch options.operation {
                        case .put:
                            try await job.put(key, expected)
                        case .get:
                            // Every byte is checked as it arrives, inside the operation's time.
                            var checked = 0
                            var same = true
                            try await job.read(key) { chunk in
                                same = same && matches(chunk, at: checked, of: expectedPattern)
                                checked += chunk.readableBytes
                            }
                            guard same, checked == expected.readableBytes else {
                                throw PocketError(.io, "bench read back different bytes for \(key)")
                            }
                        }
                        mine.append(ContinuousClock.now - began)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Duration]()) { $0 += $1 }
        }
        let elapsed = ContinuousClock.now - start
        return summarize(options, latencies: latencies, elapsed: elapsed)
    }

    static func summarize(_ options: Options, latencies: [Duration], elapsed: Duration) -> Result {
        let micros = latencies.map { Double($0.components.seconds) * 1e6 + Double($0.components.attoseconds) / 1e12 }
            .sorted()
        func percentile(_ p: Double) -> Double {
            guard !micros.isEmpty else { return 0 }
            return micros[min(micros.count - 1, Int((Double(micros.count) * p).rounded(.up)) - 1)]
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let ops = Double(micros.count) / max(seconds, 1e-9)
        return Result(
            op: options.operation.rawValue, size: options.size, count: micros.count, concurrency: options.concurrency,
            ops_per_s: ops, bytes_per_s: ops * Double(options.size), p50_us: percentile(0.5), p99_us: percentile(0.99),
            max_us: micros.last ?? 0, seconds: seconds)
    }
}

/// Moves the calling task to event loop `worker` (modulo their number), so concurrent workers share
/// the loops as separate clients would share the cores: where tasks run on the loops, a task
/// resumes on the loop that woke it, and workers started from one task would all stay on its loop.
func onLoop(_ worker: Int) async {
    let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
    try? await loops[worker % loops.count].submit {}.get()
}

/// Hands out 0, 1, 2, … to concurrent workers.
final class Ticket: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
