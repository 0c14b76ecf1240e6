import PocketProtocol
import Synchronization

/// The capabilities a job's client holds for storage servers: the newest read capability (each
/// covers every block the job had when it was signed) and the write capabilities of its
/// reservations. Ones about to expire count as missing, so a request never leaves with a
/// capability that lapses on the way.
final class CapabilityCache: Sendable {
    private struct Held {
        var read: Capability?
        /// Sorted by first block; reservations do not overlap.
        var writes: [Capability] = []
    }

    private let held = Mutex(Held())
    /// Room left before expiry for a capability to be used.
    static let margin: Int64 = 30
    /// Write capabilities kept at most (a reservation's lasts until it is committed or aborted).
    static let maxWrites = 4096

    func remember(_ capability: Capability?) {
        guard let capability else { return }
        let now = Capability.now()
        held.withLock { held in
            if capability.rights.contains(.write) {
                if held.writes.count >= Self.maxWrites {
                    // Room made in one go, rarely: lapsed ones, then the oldest down to half. (Doing it
                    // a capability at a time shifted the whole list on every put, ~2% of a client's time.)
                    held.writes.removeAll { $0.expiry < now }
                    held.writes.removeFirst(max(0, held.writes.count - Self.maxWrites / 2))
                }
                // Reservations come with rising ids: a new one almost always goes last.
                if let last = held.writes.last, last.blocks.lowerBound > capability.blocks.lowerBound {
                    held.writes.insert(
                        capability, at: Self.firstIndex(in: held.writes, after: capability.blocks.lowerBound))
                } else {
                    held.writes.append(capability)
                }
            } else if capability.rights.contains(.read) {
                if let current = held.read, current.blocks.upperBound > capability.blocks.upperBound,
                    current.isUsable(margin: Self.margin, now: now)
                {
                    return
                }
                held.read = capability
            }
        }
    }

    /// A read capability covering block `highest` and every lower one, if one is held.
    func read(upTo highest: BlockID) -> Capability? {
        let now = Capability.now()
        return held.withLock { held in
            guard let read = held.read, read.blocks.upperBound >= highest, read.isUsable(margin: Self.margin, now: now)
            else {
                return nil
            }
            return read
        }
    }

    /// Write capabilities covering every id, or nil when one is missing.
    func write(_ ids: [BlockID]) -> [Capability]? {
        let now = Capability.now()
        return held.withLock { held in
            var chosen: [Capability] = []
            for id in ids where !chosen.contains(where: { $0.blocks.contains(id) }) {
                // The last capability starting at or before `id`.
                let low = Self.firstIndex(in: held.writes, after: id)
                guard low > 0, held.writes[low - 1].blocks.contains(id),
                    held.writes[low - 1].isUsable(margin: Self.margin, now: now)
                else { return nil }
                chosen.append(held.writes[low - 1])
            }
            return chosen
        }
    }

    /// The index of the first capability starting after `id` (binary search; `writes` is sorted).
    private static func firstIndex(in writes: [Capability], after id: BlockID) -> Int {
        var low = 0
        var high = writes.count
        while low < high {
            let middle = (low + high) / 2
            if writes[middle].blocks.lowerBound <= id { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
