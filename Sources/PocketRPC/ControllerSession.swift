import Foundation
import Logging
import NIOCore
import PocketProtocol
import ServiceLifecycle
import Synchronization

/// A server's membership in the cluster: registers with the controller, then sends its stats every
/// interval. When the controller does not know it (it restarted), it registers again under the id
/// it had, with what it holds (a metadata server: its jobs), so the controller rebuilds its state
/// and the cluster heals without operator help.
public final class ControllerSession: Service, Sendable {
    public struct Settings: Sendable {
        public var controller: Endpoint
        public var registration: RegisterServer
        /// Twice a second: the autoscaler sees load, and drained servers emptying, within half a second.
        public var interval: Duration = .milliseconds(500)
        /// A fresh proof that this server holds the cluster key, for each registration and report.
        public var prove: @Sendable () -> Capability = {
            Capability(job: 0, rights: .control, blocks: 0...0, expiry: 0)
        }
        public init(controller: Endpoint, registration: RegisterServer) {
            self.controller = controller
            self.registration = registration
        }
    }

    private let settings: Settings
    /// The report for one heartbeat, given the server's id.
    private let report: @Sendable (ServerID) -> Heartbeat
    private let onRegistered: @Sendable (RegisterServerReply) -> Void
    private let describe: @Sendable (inout RegisterServer) -> Void
    private let registered = Mutex<RegisterServerReply?>(nil)
    private let logger: Logger

    /// `describe` adds what the server holds to each registration (asked every time it registers).
    public init(
        settings: Settings, logger: Logger, report: @escaping @Sendable (ServerID) -> Heartbeat,
        describe: @escaping @Sendable (inout RegisterServer) -> Void = { _ in },
        onRegistered: @escaping @Sendable (RegisterServerReply) -> Void = { _ in }
    ) {
        self.settings = settings
        self.report = report
        self.describe = describe
        self.onRegistered = onRegistered
        self.logger = logger
    }

    /// The cluster settings from the last registration, once registered.
    public var registration: RegisterServerReply? { registered.withLock { $0 } }

    /// Registers, retrying until the controller answers; returns its reply. After the first time it
    /// names the id it was given, so a controller that restarted gives the same one back.
    public func register() async throws -> RegisterServerReply {
        var delay = Duration.milliseconds(50)
        while true {
            do {
                var request = settings.registration
                request.previousID = registration?.serverID ?? 0
                describe(&request)
                request.proof = settings.prove()
                let connection = try await RPCConnection.connect(to: settings.controller, timeout: .seconds(3))
                let reply: RegisterServerReply
                do {
                    reply = try await connection.call(request)
                    await connection.close()
                } catch {
                    await connection.close()
                    throw error
                }
                registered.withLock { $0 = reply }
                onRegistered(reply)
                logger.info(
                    "registered with controller",
                    metadata: ["server.id": "\(reply.serverID)", "controller": "\(settings.controller)"])
                if request.previousID != 0, reply.serverID != request.previousID {
                    logger.warning(
                        "the controller gave this server a new id; another server holds its old one",
                        metadata: ["server.id": "\(reply.serverID)", "server.previous-id": "\(request.previousID)"])
                }
                return reply
            } catch {
                logger.debug("could not register with controller \(settings.controller) yet: \(error)")
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }

    public func run() async throws {
        if registration == nil { _ = try await register() }
        let pool = ConnectionPool(timeout: .seconds(2))
        try? await cancelWhenGracefulShutdown { try await self.sendHeartbeats(pool) }
        await pool.closeAll()
    }

    private func sendHeartbeats(_ pool: ConnectionPool) async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: settings.interval)
            guard let id = registration?.serverID else { continue }
            do {
                var heartbeat = report(id)
                heartbeat.proof = settings.prove()
                _ = try await pool.call(settings.controller, heartbeat)
            } catch let error as PocketError where error.code == .unknownServer {
                logger.warning("controller forgot this server; registering again")
                _ = try await register()
            } catch {
                logger.debug("heartbeat failed: \(error)")
            }
        }
    }
}

/// CPU time this process used between two samples, as a fraction of one core.
public final class CPUSampler: Sendable {
    private let last = Mutex<(wall: UInt64, cpu: UInt64)>((0, 0))

    public init() {
        _ = sample()
    }

    public func sample() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu =
            UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000
            + UInt64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
        let wall = DispatchTime.now().uptimeNanoseconds / 1000
        return last.withLock { last in
            defer { last = (wall, cpu) }
            guard last.wall != 0, wall > last.wall else { return 0 }
            return Double(cpu - last.cpu) / Double(wall - last.wall)
        }
    }
}

/// Turns monotonically growing counters into per-second rates between two samples.
public final class RateMeter: Sendable {
    private let last = Mutex<(time: UInt64, snapshot: ServerCounters.Snapshot)?>(nil)
    private let counters: ServerCounters

    public init(_ counters: ServerCounters) {
        self.counters = counters
    }

    public func sample() -> (bytesIn: UInt64, bytesOut: UInt64, requests: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        let snapshot = counters.snapshot()
        return last.withLock { last in
            defer { last = (now, snapshot) }
            guard let previous = last, now > previous.time else { return (0, 0, 0) }
            let seconds = Double(now - previous.time) / 1e9
            func rate(_ a: UInt64, _ b: UInt64) -> UInt64 { UInt64(Double(a &- b) / seconds) }
            return (
                rate(snapshot.bytesIn, previous.snapshot.bytesIn), rate(snapshot.bytesOut, previous.snapshot.bytesOut),
                rate(snapshot.requests, previous.snapshot.requests)
            )
        }
    }
}
