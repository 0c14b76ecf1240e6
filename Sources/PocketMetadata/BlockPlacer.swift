import PocketProtocol

/// Chooses the server for each new block of a job so that, over any run of blocks, each server gets
/// its weight's share (smooth weighted round robin: deterministic, evenly interleaved). Servers the
/// caller rules out (full, draining, dead) are skipped and the others share their weight.
public struct BlockPlacer: Sendable {
    public private(set) var weightMap: WeightMap
    private var credit: [ServerID: Double] = [:]

    public init(weightMap: WeightMap) {
        self.weightMap = weightMap
    }

    public mutating func update(_ weightMap: WeightMap) {
        self.weightMap = weightMap
        credit = credit.filter { entry in weightMap.entries.contains { $0.server == entry.key } }
    }

    /// The next server, or nil when no server of the map is eligible.
    public mutating func next(eligible: (ServerID) -> Bool) -> ServerID? {
        var total = 0.0
        var best: (server: ServerID, credit: Double)?
        for entry in weightMap.entries where entry.weight > 0 && eligible(entry.server) {
            total += entry.weight
            let credit = self.credit[entry.server, default: 0] + entry.weight
            self.credit[entry.server] = credit
            if best == nil || credit > best!.credit { best = (entry.server, credit) }
        }
        guard let best else { return nil }
        credit[best.server]! -= total
        return best.server
    }
}
