import Synchronization

/// Dirty bytes across every open file of a mount, so many files written at once stay within one
/// memory bound.
final class DirtyBudget: Sendable {
    let limit: Int
    private let used = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    func add(_ bytes: Int) {
        used.add(bytes, ordering: .relaxed)
    }

    var exceeded: Bool { used.load(ordering: .relaxed) > limit }

    /// Dirty bytes counted now.
    var inUse: Int { used.load(ordering: .relaxed) }
}
