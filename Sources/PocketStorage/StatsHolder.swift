import PocketProtocol
import PocketRPC
import Synchronization

/// Builds a storage server's stats: usage from the store, rates from the server's counters.
final class StatsHolder: Sendable {
    private let parts = Mutex<(RateMeter, CPUSampler)?>(nil)
    private let lastRates = Mutex<ServerStats>(ServerStats())

    func attach(server: RPCServer, cpu: CPUSampler) {
        parts.withLock { $0 = (RateMeter(server.counters), cpu) }
    }

    /// Usage now, rates as of the last sample (for on-demand queries).
    func current(store: any BlockStore) -> ServerStats {
        var stats = lastRates.withLock { $0 }
        let usage = store.usage()
        stats.usedBytes = usage.usedBytes
        stats.blockCount = usage.blockCount
        stats.capacityBytes = store.capacityBytes
        return stats
    }

    /// A new sample of every figure; called once per heartbeat.
    func sample(store: any BlockStore) -> ServerStats {
        var stats = ServerStats()
        if let (meter, cpu) = parts.withLock({ $0 }) {
            let rates = meter.sample()
            stats.bytesInPerSecond = rates.bytesIn
            stats.bytesOutPerSecond = rates.bytesOut
            stats.requestsPerSecond = rates.requests
            stats.cpu = cpu.sample()
        }
        lastRates.withLock { $0 = stats }
        return current(store: store)
    }
}
