import NIOCore
import NIOPosix
import PocketProtocol
import Synchronization

/// Connections to many servers, opened on first use and reopened after a failure. `width`
/// connections per server spread a server's traffic over the event loops (connection i lives on
/// loop i), taken in turn. With `followingCallers`, a caller running on an event loop uses that
/// loop's connection instead, so a request and its reply's resumption stay on one thread: for
/// small requests, where a change of thread costs as much as the work; large transfers are
/// better spread.
public final class ConnectionPool: Sendable {
    private let width: Int
    private let timeout: TimeAmount
    private let group: any EventLoopGroup
    private let loops: [any EventLoop]
    /// Each loop's position in `loops`, when callers are followed.
    private let loopIndex: [ObjectIdentifier: Int]
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
        width: Int = 1, followingCallers: Bool = false, timeout: TimeAmount = RPCConnection.defaultTimeout,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, security: TransportSecurity = .process
    ) {
        self.width = max(width, 1)
        self.timeout = timeout
        self.group = group
        self.security = security
        loops = Array(group.makeIterator())
        loopIndex =
            followingCallers
            ? Dictionary(uniqueKeysWithValues: loops.enumerated().map { (ObjectIdentifier($1), $0) }) : [:]
    }

    public func call<R: WireRequest>(
        _ endpoint: Endpoint, _ request: R, timeout: TimeAmount? = nil
    ) async throws
        -> R.Response
    {
        let connection = try await self.connection(to: endpoint)
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, loop !== connection.eventLoop {
            // A caller on another loop moves to the connection's first (where tasks run on the loops,
            // a task resumes on the loop that woke it): the request is written and the reply
            // resumes it there, and concurrent transfers spread over the loops with their connections.
            try await connection.eventLoop.submit {}.get()
        }
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
                if case .ready(let held) = slot.connections[index], held === connection {
                    slot.connections[index] = nil
                }
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
        // A live connection is returned as is: awaiting a future for it cost a hop through
        // another event loop on every call.
        let pick: Pick = slots.withLock { slots in
            if slots[endpoint] == nil { slots[endpoint] = Slot(connections: Array(repeating: nil, count: width)) }
            let index: Int
            if let loop = MultiThreadedEventLoopGroup.currentEventLoop, let position = loopIndex[ObjectIdentifier(loop)]
            {
                index = position % width
            } else {
                index = slots[endpoint]!.next
                if width > 1 { slots[endpoint]!.next = (index + 1) % width }
            }
            switch slots[endpoint]!.connections[index] {
            case .ready(let connection) where connection.isActive:
                return .ready(connection)
            case .connecting(let future):
                return .pending(index, future)
            default:
                let loop = loops.isEmpty ? group.next() : loops[index % loops.count]
                let promise = loop.makePromise(of: RPCConnection.self)
                let timeout = self.timeout
                let security = self.security
                promise.completeWithTask {
                    try await RPCConnection.connect(to: endpoint, timeout: timeout, group: loop, security: security)
                }
                slots[endpoint]!.connections[index] = .connecting(promise.futureResult)
                return .pending(index, promise.futureResult)
            }
        }
        switch pick {
        case .ready(let connection):
            return connection
        case .pending(let index, let pending):
            do {
                let connection = try await pending.get()
                settle(endpoint, index, .ready(connection))
                return connection
            } catch {
                settle(endpoint, index, nil)
                throw error
            }
        }
    }

    private enum Pick {
        case ready(RPCConnection)
        case pending(Int, EventLoopFuture<RPCConnection>)
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
