import Testing

@testable import PocketController
@testable import PocketProtocol

/// The autoscaler against synthetic utilisation series, one decision a second.
@Suite struct AutoscalerTests {
    let start = ContinuousClock.now
    let pool = Pool.storage(.dram)

    func scaler(_ limits: ClosedRange<Int> = 1...8) -> Autoscaler {
        var settings = Autoscaler.Settings()
        settings.limits = [pool: limits]
        return Autoscaler(settings: settings)
    }

    /// A pool of `servers` servers, all at `network` utilisation; ids from 1.
    func load(
        _ servers: Int, network: Double, allocation: Double = 0, draining: Int = 0, launching: Int = 0
    ) -> PoolLoad {
        func server(_ id: Int) -> ServerLoad {
            var load = ServerLoad(id: ServerID(id))
            load.network = network
            load.declaredThroughput = 1e9
            load.declaredCapacity = 1e9
            load.allocation = allocation
            return load
        }
        return PoolLoad(
            pool: pool, active: (1...max(servers, 1)).prefix(servers).map(server),
            draining: (0..<draining).map { server(100 + $0) }, launching: launching)
    }

    /// Runs a series of (servers, utilisation) seconds and returns the directives of each second.
    func run(_ scaler: inout Autoscaler, _ series: [PoolLoad]) -> [[Autoscaler.Directive]] {
        series.enumerated().map { second, load in scaler.decide([load], now: start + .seconds(second)) }
    }

    @Test func aStepUpAddsEnoughServersAtOnce() {
        var autoscaler = scaler()
        // Two servers at 140%: 2 × 1.4 / 0.7 = 4 servers, so two more, in one decision.
        let decisions = run(&autoscaler, [load(2, network: 0.5), load(2, network: 1.4)])
        #expect(decisions[0].isEmpty)
        guard case .launch(let pool, let count, _, let reason) = decisions[1].first else {
            Issue.record("expected a launch, got \(decisions[1])")
            return
        }
        #expect(pool == self.pool && count == 2)
        #expect(reason.contains("network at 140%"))
    }

    @Test func noSecondLaunchWhileServersAreComingOrDuringTheCooldown() {
        var autoscaler = scaler()
        let decisions = run(
            &autoscaler,
            [
                load(2, network: 1.4), load(2, network: 1.4, launching: 2), load(4, network: 0.9),
                load(4, network: 0.9),
                load(4, network: 0.9), load(4, network: 0.9),
            ])
        #expect(decisions.map(\.count) == [1, 0, 0, 1, 0, 0])  // the cooldown is 3 s
    }

    @Test func aStepDownDrainsOneServerAfterTheQuietPeriod() {
        var autoscaler = scaler()
        var series = Array(repeating: load(4, network: 0.2), count: 7)
        series[0] = load(4, network: 0.7)
        let decisions = run(&autoscaler, series)
        // Below 60% from second 1; drained at second 6 (5 s later), the least allocated server.
        #expect(decisions.prefix(6).allSatisfy { $0.isEmpty })
        guard case .drain(let id, _, _, _) = decisions[6].first else {
            Issue.record("expected a drain, got \(decisions[6])")
            return
        }
        #expect(id == 4)  // all equal: the newest goes first
    }

    @Test func theLeastAllocatedServerIsDrained() {
        var autoscaler = scaler()
        var pool = load(3, network: 0.1)
        pool.active[0].allocation = 0.5
        pool.active[1].allocation = 0.1
        pool.active[2].allocation = 0.3
        let decisions = run(&autoscaler, Array(repeating: pool, count: 6))
        #expect(decisions[5] == [.drain(2, self.pool, utilisation: 0.1, reason: decisions[5].first.map(reason) ?? "")])
    }

    func reason(_ directive: Autoscaler.Directive) -> String {
        switch directive {
        case .launch(_, _, _, let reason), .drain(_, _, _, let reason), .reactivate(_, _, _, let reason): reason
        }
    }

    @Test func noDrainWhenTheRestWouldBeOverloadedOrOverReserved() {
        var autoscaler = scaler()
        // 2 servers at 50%: without one, 100% > 80%.
        #expect(run(&autoscaler, Array(repeating: load(2, network: 0.5), count: 10)).allSatisfy { $0.isEmpty })
        // Load is low, but reservations would not fit on one server fewer.
        var reserved = scaler()
        let decisions = run(&reserved, Array(repeating: load(2, network: 0.1, allocation: 0.7), count: 10))
        #expect(decisions.allSatisfy { $0.isEmpty })
    }

    @Test func oscillationAtTheThresholdDoesNotFlap() {
        var autoscaler = scaler()
        // Load hovering around the upper threshold: one scale-up, then the cooldown absorbs the
        // wobble; the added servers bring it into the band, where nothing happens.
        var series: [PoolLoad] = []
        for second in 0..<30 {
            let servers = second < 2 ? 2 : 3
            let base = second < 2 ? 0.82 : 0.82 * 2 / 3
            series.append(load(servers, network: base + (second % 2 == 0 ? 0.02 : -0.02)))
        }
        let actions = run(&autoscaler, series).flatMap { $0 }
        #expect(actions.count == 1, "\(actions)")
        // Straddling the lower threshold never drains either: it must stay below for 5 s.
        var lower = scaler()
        let wobble = (0..<30).map { load(3, network: $0 % 3 == 0 ? 0.61 : 0.55) }
        #expect(run(&lower, wobble).allSatisfy { $0.isEmpty })
    }

    @Test func limitsBoundTheServerCount() {
        var capped = scaler(1...3)
        let up = run(&capped, [load(2, network: 3.0)])
        #expect(up[0].count == 1)
        if case .launch(_, let count, _, _) = up[0][0] { #expect(count == 1) }
        var full = scaler(1...2)
        #expect(run(&full, [load(2, network: 3.0)])[0].isEmpty)
        // At the minimum nothing drains however idle; below it, servers are added at once.
        var floor = scaler(2...4)
        #expect(run(&floor, Array(repeating: load(2, network: 0), count: 10)).allSatisfy { $0.isEmpty })
        guard case .launch(_, 1, _, _)? = run(&floor, [load(1, network: 0)])[0].first else {
            Issue.record("expected the pool back at its minimum")
            return
        }
    }

    @Test func drainingServersAreTakenBackBeforeNewOnesStart() {
        var autoscaler = scaler()
        let decisions = run(&autoscaler, [load(2, network: 1.4, draining: 1)])[0]
        #expect(decisions.count == 2)
        guard case .reactivate(100, _, _, _) = decisions[0], case .launch(_, 1, _, _) = decisions[1] else {
            Issue.record("expected reactivate then launch, got \(decisions)")
            return
        }
    }

    @Test func poolsWithoutLimitsAreLeftAlone() {
        var autoscaler = scaler()
        let other = PoolLoad(pool: .storage(.hdd), active: [ServerLoad(id: 9)])
        var hot = other
        hot.active[0].cpu = 5
        #expect(autoscaler.decide([hot], now: start).isEmpty)
    }
}
