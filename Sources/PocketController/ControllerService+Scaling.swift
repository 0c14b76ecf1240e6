import Foundation
import PocketProtocol
import Synchronization

/// Carrying out the autoscaler: every 250 ms release drained servers that hold nothing live; every
/// 500 ms (servers report twice a second), when autoscaling is on, ask the autoscaler and do what
/// it says. Neither happens during the recovery grace period, when the loads are not all known.
extension ControllerService {
    func scalingLoop() async {
        guard let scaling else { return }
        var unowned: Set<ServerID> = []
        var tick = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            guard !state.withLock({ $0.isRecovering(now: .now) }) else { continue }
            tick += 1
            await releaseDrained(unowned: &unowned)
            guard scaling.autoscale, tick % 2 == 0 else { continue }
            let now = ContinuousClock.now
            let loads = state.withLock { state in
                state.forgetStaleLaunches(now: now)
                return state.loads(now: now)
            }
            let directives = autoscaler.withLock { $0.decide(loads, now: now) }
            for directive in directives { await carryOut(directive) }
        }
    }

    private func carryOut(_ directive: Autoscaler.Directive) async {
        let now = ContinuousClock.now
        switch directive {
        case .launch(let pool, let count, let utilisation, let reason):
            await launch(pool, count: count, forLoad: true, utilisation: utilisation, reason: reason)
        case .reactivate(let id, let pool, let utilisation, let reason):
            state.withLock { state in
                state.reactivate(id, now: now)
                state.record(
                    .reactivate, pool, count: 1, utilisation: utilisation, reason: reason, time: Self.wallClock())
            }
            logger.info("server taken back into service", metadata: ["server.id": "\(id)", "reason": "\(reason)"])
            tableDirty.store(true, ordering: .releasing)
        case .drain(let id, let pool, let utilisation, let reason):
            state.withLock { state in
                state.drain(id, now: now)
                state.record(.drain, pool, count: 1, utilisation: utilisation, reason: reason, time: Self.wallClock())
            }
            logger.info("draining server", metadata: ["server.id": "\(id)", "reason": "\(reason)"])
            tableDirty.store(true, ordering: .releasing)
        }
    }

    /// Asks the provisioner for servers; the state expects them until they register.
    func launch(_ pool: Pool, count: Int, forLoad: Bool, utilisation: Double, reason: String) async {
        guard let provisioner = scaling?.provisioner else { return }
        state.withLock { state in
            state.expectLaunch(pool, count: count, forLoad: forLoad, now: .now)
            state.record(.launch, pool, count: count, utilisation: utilisation, reason: reason, time: Self.wallClock())
        }
        logger.info("starting servers", metadata: ["pool": "\(pool)", "count": "\(count)", "reason": "\(reason)"])
        do {
            try await provisioner.launch(pool.kind, tier: pool.tier, count: count)
        } catch {
            state.withLock { state in
                state.cancelLaunches(pool, count: count)
                state.record(
                    .failed, pool, count: count, utilisation: utilisation, reason: "could not start: \(error)",
                    time: Self.wallClock())
            }
            logger.warning("could not start servers: \(error)", metadata: ["pool": "\(pool)"])
        }
    }

    /// Stops drained servers that hold nothing live. One the provisioner did not start is left
    /// running, drained (it is the first taken back when load rises).
    private func releaseDrained(unowned: inout Set<ServerID>) async {
        guard let provisioner = scaling?.provisioner else { return }
        let servers = state.withLock { $0.releasable(now: .now) }.filter { !unowned.contains($0.id) }
        for server in servers {
            let pool = server.kind == .metadata ? Pool.metadata : Pool.storage(server.tier)
            do {
                if try await provisioner.stop(address: server.address) {
                    state.withLock { state in
                        state.remove(server: server.id)
                        state.record(
                            .release, pool, count: 1, utilisation: 0, reason: "drained: holds nothing live",
                            time: Self.wallClock())
                    }
                    logger.info("released drained server", metadata: ["server.address": "\(server.address)"])
                    tableDirty.store(true, ordering: .releasing)
                } else {
                    unowned.insert(server.id)
                    logger.info(
                        "drained server was not started by the provisioner; left running",
                        metadata: ["server.address": "\(server.address)"])
                }
            } catch {
                logger.warning("could not stop \(server.address): \(error)")
            }
        }
    }

    static func wallClock() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
