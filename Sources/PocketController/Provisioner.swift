import PocketProtocol
import Synchronization

/// Starts and stops servers for the controller: storage servers when jobs need more than the
/// cluster has or the autoscaler sees load above its threshold, metadata servers when metadata
/// load is high, and stops drained ones. Started servers register with the controller like any
/// other; the controller names them by the address they register with.
public protocol Provisioner: Sendable {
    /// The storage tiers it can start, with the throughput and capacity each new server declares.
    var storageShapes: [Tier: (throughput: UInt64, capacity: UInt64)] { get }
    /// Whether it can start metadata servers.
    var startsMetadataServers: Bool { get }
    /// Starts `count` servers of `kind` (and, for storage, `tier`); returns once they are
    /// starting (they register themselves).
    func launch(_ kind: ServerKind, tier: Tier, count: Int) async throws
    /// Stops the server it started that registered as `address`. Returns false when it started no
    /// such server (one an operator started is not its to stop).
    func stop(address: String) async throws -> Bool
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
