import NIOCore
import PocketClient
import PocketProtocol
import Synchronization

/// `pocket soak`: many concurrent clients doing a mix of put, get and delete on keys of their own
/// for a while, every byte read checked against what that client last wrote there. Any error is
/// counted (a key a client never wrote, or deleted, must read as "not found", which is no error).
public enum Soak {
    public struct Options: Sendable {
        public var clients = 250
        public var duration: Duration = .seconds(60)
        /// Keys each client cycles over.
        public var keys = 8
        /// Object sizes, picked at random per write.
        public var sizes = [1 << 10, 16 << 10, 256 << 10, 1 << 20]
        public var seed: UInt64 = 1
        public init() {}
    }

    public struct Operation: Codable, Sendable {
        public var count = 0
        public var p50_us = 0.0
        public var p99_us = 0.0
        public var max_us = 0.0
    }

    public struct Report: Codable, Sendable {
        public var clients: Int
        public var seconds: Double
        public var operations: Int
        public var ops_per_s: Double
        public var errors: Int
        /// The first few errors, as text.
        public var error_samples: [String]
        public var put: Operation
        public var get: Operation
        public var delete: Operation
    }

    enum Kind: Int, CaseIterable { case put, get, delete }

    /// What one client saw.
    struct Tally: Sendable {
        var latencies: [[Duration]] = Array(repeating: [], count: Kind.allCases.count)
        var errors: [String] = []
        var errorCount = 0
    }

    public static func run(_ options: Options, job: PocketJob) async -> Report {
        let start = ContinuousClock.now
        let deadline = start + options.duration
        let tallies = await withTaskGroup(of: Tally.self) { group in
            for client in 0..<options.clients {
                group.addTask {
                    await onLoop(client)
                    return await runClient(client, options: options, job: job, until: deadline)
                }
            }
            return await group.reduce(into: [Tally]()) { $0.append($1) }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func summary(_ kind: Kind) -> Operation {
            let micros = tallies.flatMap { $0.latencies[kind.rawValue] }.map {
                Double($0.components.seconds) * 1e6 + Double($0.components.attoseconds) / 1e12
            }.sorted()
            guard !micros.isEmpty else { return Operation() }
            let at = { (p: Double) in micros[min(micros.count - 1, Int(Double(micros.count) * p))] }
            return Operation(count: micros.count, p50_us: at(0.5), p99_us: at(0.99), max_us: micros.last!)
        }
        let operations = tallies.reduce(0) { $0 + $1.latencies.reduce(0) { $0 + $1.count } }
        return Report(
            clients: options.clients, seconds: seconds, operations: operations,
            ops_per_s: Double(operations) / max(seconds, 1e-9), errors: tallies.reduce(0) { $0 + $1.errorCount },
            error_samples: Array(tallies.flatMap(\.errors).prefix(10)), put: summary(.put), get: summary(.get),
            delete: summary(.delete))
    }

    static func runClient(
        _ client: Int, options: Options, job: PocketJob, until deadline: ContinuousClock.Instant
    )
        async -> Tally
    {
        var random = Xorshift(seed: options.seed &+ UInt64(client) &* 0x9E37_79B9_7F4A_7C15)
        // What each of this client's keys holds: (size, seed) of the last write, nil when absent.
        var holds: [(size: Int, seed: UInt64)?] = Array(repeating: nil, count: options.keys)
        var tally = Tally()
        func record(_ error: any Error, _ what: String) {
            tally.errorCount += 1
            if tally.errors.count < 3 { tally.errors.append("client \(client) \(what): \(error)") }
        }
        while ContinuousClock.now < deadline {
            let key = Int(random.next() % UInt64(options.keys))
            let name = "soak/\(client)/\(key)"
            let roll = random.next() % 10
            let kind: Kind = roll < 4 ? .put : roll < 8 ? .get : .delete
            let began = ContinuousClock.now
            do {
                switch kind {
                case .put:
                    let size = options.sizes[Int(random.next() % UInt64(options.sizes.count))]
                    let seed = random.next()
                    try await job.put(name, Bench.contents(size: size, seed: seed))
                    holds[key] = (size, seed)
                case .get:
                    do {
                        let data = try await job.get(name)
                        if let held = holds[key] {
                            if data != Bench.contents(size: held.size, seed: held.seed) {
                                record(PocketError(.io, "read back different bytes"), "get \(name)")
                            }
                        } else {
                            record(PocketError(.internalError, "a deleted key came back"), "get \(name)")
                        }
                    } catch let error as PocketError where error.code == .notFound && holds[key] == nil {
                        // Never written, or deleted: as expected.
                    }
                case .delete:
                    do {
                        try await job.delete(name)
                    } catch let error as PocketError where error.code == .notFound && holds[key] == nil {}
                    holds[key] = nil
                }
                tally.latencies[kind.rawValue].append(ContinuousClock.now - began)
            } catch {
                record(error, "\(kind) \(name)")
            }
        }
        return tally
    }
}

/// A small fast generator for the clients' choices.
struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
