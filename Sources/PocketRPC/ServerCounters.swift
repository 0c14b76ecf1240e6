import Synchronization

/// Traffic a server has seen since it started; read by the stats reporter to compute rates.
public final class ServerCounters: Sendable {
    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)
    let requests = Atomic<UInt64>(0)
    let connections = Atomic<Int>(0)

    public init() {}

    public struct Snapshot: Sendable {
        public var bytesIn: UInt64
        public var bytesOut: UInt64
        public var requests: UInt64
        public var connections: Int
    }

    public func snapshot() -> Snapshot {
        Snapshot(
            bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed),
            requests: requests.load(ordering: .relaxed), connections: connections.load(ordering: .relaxed))
    }

    func received(_ bytes: Int) {
        bytesIn.add(UInt64(bytes), ordering: .relaxed)
        requests.add(1, ordering: .relaxed)
    }

    func sent(_ bytes: Int) {
        bytesOut.add(UInt64(bytes), ordering: .relaxed)
    }
}
