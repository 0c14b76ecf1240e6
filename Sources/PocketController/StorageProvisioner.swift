import PocketProtocol
import Synchronization

/// Starts storage servers when jobs need more than the cluster has. The servers it starts register
/// with the controller like any other.
public protocol StorageProvisioner: Sendable {
    /// The tiers it can start servers of, with the throughput and capacity each new server declares.
    var shapes: [Tier: (throughput: UInt64, capacity: UInt64)] { get }
    /// The most storage servers the cluster may have, counting those it did not start.
    var maxServers: Int { get }
    /// Starts `count` servers of `tier` and returns once they are listening.
    func launch(tier: Tier, count: Int) async throws
    /// Stops every server it started.
    func shutdown() async
}

/// Runs async operations one at a time, in arrival order (an actor would interleave them at every
/// suspension point).
final class SerialQueue: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                if state.busy {
                    state.waiters.append(turn)
                    return false
                }
                state.busy = true
                return true
            }
            if now { turn.resume() }
        }
        defer {
            let next = state.withLock { state in
                if state.waiters.isEmpty { state.busy = false }
                return state.waiters.isEmpty ? nil : state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
