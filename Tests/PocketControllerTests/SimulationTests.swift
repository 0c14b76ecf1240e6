import Testing

@testable import PocketController
@testable import PocketProtocol
@testable import PocketSimulation

/// A short simulated day: every job is placed, the cluster grows and shrinks with the trace, and
/// the elastic cluster costs less than one sized for its peak.
@Suite struct SimulationTests {
    @Test func aSimulatedDayScalesWithTheTrace() {
        var options = Simulation.Options()
        options.jobs = 300
        options.day = .seconds(4 * 3600)
        options.maxServersPerTier = 200
        let report = Simulation(options: options).run()
        #expect(report.admitted == 300)
        #expect(report.refused == 0)
        #expect(report.placements.count >= 300)
        let actions = Set(report.events.map(\.action))
        #expect(actions.isSuperset(of: [.launch, .drain, .release]))
        // Fewer servers at night than at the peak, and cheaper than the peak all day.
        let servers = report.samples.map { $0.servers.values.reduce(0, +) }
        #expect(servers.max()! > servers.min()!)
        for tier in Tier.allCases {
            let peak = Double(report.peakServers[tier] ?? 0)
            #expect((report.serverSeconds[tier] ?? 0) <= peak * 4 * 3600)
        }
        let elastic = report.serverSeconds.values.reduce(0, +)
        let fixed = Double(report.peakServers.values.reduce(0, +)) * 4 * 3600
        #expect(elastic < fixed)
    }

    @Test func theTraceIsDeterministicAndFollowsTheDay() {
        var options = Simulation.Options()
        options.jobs = 2000
        let first = Simulation(options: options).trace()
        #expect(first.map(\.name) == Simulation(options: options).trace().map(\.name))
        #expect(first.map(\.arrival) == Simulation(options: options).trace().map(\.arrival))
        // More arrivals around noon (the sine's peak) than around midnight (its trough).
        let hour = { (job: Simulation.SimJob) in Int(job.arrival.components.seconds / 3600) }
        let noon = first.filter { (10..<14).contains(hour($0)) }.count
        let midnight = first.filter { hour($0) < 2 || hour($0) >= 22 }.count
        #expect(noon > 3 * midnight)
    }
}
