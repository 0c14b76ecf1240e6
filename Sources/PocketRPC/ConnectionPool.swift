import NIOCore
import NIOPosix
import PocketProtocol
import Synchronization

/// Connections to many servers, opened on first use and reopened after a failure. `width`
/// connections per server spread a server's traffic over the event loops.
public final class ConnectionPool: Sendable {
    private let width: Int
    private let timeout: TimeAmount
    private let group: any EventLoopGroup
    private let security: TransportSecurity
    private let slots = Mutex<[Endpoint: Slot]>([:])

    private enum Connection {
        case connecting(EventLoopFuture<RPCConnection>)
        case ready(RPCConnection)
    }

    private struct Slot {
        var connections: [Connection?]
        var next = 0
    }

    public init(
        width: Int = 1, timeout: TimeAmount = RPCConnection.defaultTimeout,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, security: TransportSecurity = .process
    ) {
        self.width = max(width, 1)
        self.timeout = timeout
        self.group = group
        self.security = security
    }

    public func call<R: WireRequest>(_ endpoint: Endpoint, _ request: R, timeout: TimeAmount? = nil) async throws
        -> R.Response
    {
        let connection = try await self.connection(to: endpoint)
        do {
            return try await connection.call(request, timeout: timeout)
        } catch let error as PocketError where error.code == .timedOut {
            // A connection that let a request time out may sit in TCP's retransmission back-off (a
            // partition that has healed, a server that was stopped): a new one reaches the server
            // at once, the old one only at its next retry, which can be many seconds away.
            await discard(connection, of: endpoint)
            throw error
        }
    }

    /// Takes the connection out of use: new calls open a new one. It is closed only after the
    /// timeout, so the other requests in flight on it get their answers (or time out) as before.
    private func discard(_ connection: RPCConnection, of endpoint: Endpoint) async {
        slots.withLock { slots in
            guard var slot = slots[endpoint] else { return }
            for index in slot.connections.indices {
                if case .ready(let held) = slot.connections[index], held === connection { slot.connections[index] = nil }
            }
            slots[endpoint] = slot
        }
        let grace = Duration.nanoseconds(timeout.nanoseconds)
        Task {
            try? await Task.sleep(for: grace)
            await connection.close()
        }
    }

    public func connection(to endpoint: Endpoint) async throws -> RPCConnection {
        let (index, pending): (Int, EventLoopFuture<RPCConnection>) = slots.withLock { slots in
            var slot = slots[endpoint] ?? Slot(connections: Array(repeating: nil, count: width))
            let index = slot.next
            slot.next = (slot.next + 1) % width
            defer { slots[endpoint] = slot }
            switch slot.connections[index] {
            case .ready(let connection) where connection.isActive:
                return (index, group.next().makeSucceededFuture(connection))
            case .connecting(let future):
                return (index, future)
            default:
                let promise = group.next().makePromise(of: RPCConnection.self)
                let timeout = self.timeout
                let group = self.group
                let security = self.security
                promise.completeWithTask {
                    try await RPCConnection.connect(to: endpoint, timeout: timeout, group: group, security: security)
                }
                slot.connections[index] = .connecting(promise.futureResult)
                return (index, promise.futureResult)
            }
        }
        do {
            let connection = try await pending.get()
            settle(endpoint, index, .ready(connection))
            return connection
        } catch {
            settle(endpoint, index, nil)
            throw error
        }
    }

    private func settle(_ endpoint: Endpoint, _ index: Int, _ connection: Connection?) {
        slots.withLock { slots in
            guard var slot = slots[endpoint] else { return }
            if case .connecting = slot.connections[index] {
                slot.connections[index] = connection
                slots[endpoint] = slot
            }
        }
    }

    public func closeAll() async {
        let all = slots.withLock { slots in
            defer { slots.removeAll() }
            return slots.values.flatMap { $0.connections }
        }
        for case .ready(let connection) in all {
            await connection.close()
        }
    }
}
