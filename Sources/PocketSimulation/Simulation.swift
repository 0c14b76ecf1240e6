import Foundation
import PocketController
import PocketProtocol

/// The controller's policy, placement and autoscaler, unchanged, against a simulated cluster: no
/// processes, simulated time. Jobs arrive over a day-like trace (more by day than by night), each
/// with hints, a lifetime and a load; simulated storage servers report the load their jobs' weight
/// maps put on them; a simulated provisioner starts servers after a boot delay and stops drained
/// ones. Reports how long placement and autoscaling decisions take at that size, servers over
/// time, and cost against a cluster sized statically for the peak.
public struct Simulation {
    public struct Options: Sendable {
        public var jobs = 10_000
        public var day: Duration = .seconds(86_400)
        /// Heartbeat and autoscaler period, simulated.
        public var step: Duration = .seconds(10)
        /// From a provisioner's launch to the new server's registration, simulated.
        public var bootDelay: Duration = .seconds(5)
        public var maxServersPerTier = 1_000
        public var seed: UInt64 = 1
        public init() {}
    }

    public struct Sample: Sendable {
        public var time: Duration
        public var servers: [Tier: Int]
        public var jobs: Int
        public var utilisation: [Tier: Double]
    }

    public struct Report: Sendable {
        public var samples: [Sample] = []
        /// Wall-clock microseconds of each placement (admission), with the storage servers then.
        public var placements: [(micros: Double, servers: Int)] = []
        /// Wall-clock microseconds of each autoscaler round (loads + decisions).
        public var decisions: [Double] = []
        public var events: [ScalingEvent] = []
        public var serverSeconds: [Tier: Double] = [:]
        public var peakServers: [Tier: Int] = [:]
        public var overcommitted = 0
        public var admitted = 0
        public var refused = 0
        public var wallSeconds = 0.0
    }

    struct SimJob {
        var name: String
        var hints: JobHints
        var arrival: Duration
        var lifetime: Duration
        /// Fraction of its allocation's throughput it uses while it runs.
        var activity: Double
    }

    let options: Options
    let policy: RightsizingPolicy

    public init(options: Options, policy: RightsizingPolicy = RightsizingPolicy()) {
        self.options = options
        self.policy = policy
    }

    /// The trace: arrivals follow the day (a sine from 20% of the mean rate at midnight to 180% at
    /// noon), lifetimes 1–30 minutes, hints a mix of the paper's kinds: 30% latency-sensitive with
    /// 10–100 lambdas, 50% the same not latency-sensitive, 15% throughput and capacity (1–8 GB/s,
    /// 1–200 GB), 5% cold (10–100 MB/s, 2–22 TB).
    func trace() -> [SimJob] {
        var random = SplitMix(seed: options.seed)
        let day = Double(options.day.components.seconds)
        var jobs: [SimJob] = []
        jobs.reserveCapacity(options.jobs)
        while jobs.count < options.jobs {
            // Thinning: draw uniformly over the day, keep with the day's relative rate.
            let at = random.unit() * day
            let rate = 1 + 0.8 * sin(2 * Double.pi * (at / day - 0.25))
            guard random.unit() * 1.8 < rate else { continue }
            let kind = random.unit()
            var hints = JobHints()
            if kind < 0.3 {
                hints.latencySensitive = true
                hints.maxLambdas = UInt32(10 + random.below(90))
            } else if kind < 0.8 {
                hints.maxLambdas = UInt32(10 + random.below(90))
            } else if kind < 0.95 {
                hints.peakThroughput = UInt64(1 + random.below(8)) * 1_000_000_000
                hints.capacity = UInt64(1 + random.below(200)) * 1_000_000_000
            } else {
                hints.peakThroughput = UInt64(10 + random.below(90)) * 1_000_000
                hints.capacity = UInt64(2 + random.below(20)) * 1_000_000_000_000
            }
            let lifetime = Duration.seconds(60 + Int64(random.below(1740)))
            jobs.append(
                SimJob(
                    name: "job-\(jobs.count)", hints: hints, arrival: .milliseconds(Int64(at * 1000)),
                    lifetime: lifetime, activity: 0.5 + 0.5 * random.unit()))
        }
        return jobs.sorted { $0.arrival < $1.arrival }
    }

    public func run() -> Report {
        let wallStart = ContinuousClock.now
        let origin = ContinuousClock.now
        var report = Report()
        var settings = ControllerState.Settings()
        settings.policy = policy
        var state = ControllerState(settings: settings)
        var scaler = Autoscaler(settings: autoscalerSettings())
        _ = try? state.register(
            RegisterServer(
                kind: .metadata, tier: .dram, address: "sim-metadata", capacityBytes: 1 << 40, throughput: 0),
            now: origin)
        var cluster = SimCluster(policy: policy)
        for tier in Tier.allCases { cluster.register(tier, in: &state, now: origin) }

        let jobs = trace()
        var next = 0
        var running: [String: SimJob] = [:]
        var departures: [(at: Duration, name: String)] = []
        var waiting: [(at: Duration, job: SimJob)] = []
        var time = Duration.zero
        var lastSample = Duration.seconds(-600)
        while time <= options.day {
            let now = origin + time
            cluster.boot(until: time, in: &state, now: now)
            // Jobs that end, then jobs that arrive (or waited for servers to boot).
            for departure in departures where departure.at <= time {
                state.remove(departure.name, persisted: false)
                running.removeValue(forKey: departure.name)
            }
            departures.removeAll { $0.at <= time }
            var arrivals = waiting.filter { $0.at <= time }.map { ($0.job, true) }
            waiting.removeAll { $0.at <= time }
            while next < jobs.count, jobs[next].arrival <= time {
                arrivals.append((jobs[next], false))
                next += 1
            }
            for (job, retried) in arrivals {
                let room = retried ? nil : cluster.room(state, limit: options.maxServersPerTier)
                let began = ContinuousClock.now
                let outcome = try? state.admit(
                    name: job.name, hints: job.hints, newID: JobID(next + 1), token: "t", room: room)
                let elapsed = ContinuousClock.now - began
                report.placements.append((micros(elapsed), cluster.count))
                switch outcome {
                case .placed(let placed)?:
                    report.admitted += 1
                    if placed.info.allocation.overcommitted { report.overcommitted += 1 }
                    running[job.name] = job
                    departures.append((time + job.lifetime, job.name))
                case .launch(let tier, let count)?:
                    cluster.launch(
                        tier, count: count, at: time + options.bootDelay, state: &state, now: now, forLoad: false)
                    waiting.append((time + options.bootDelay, job))
                case nil:
                    report.refused += 1
                }
            }
            // Servers report the load their jobs put on them; the autoscaler acts on it.
            cluster.report(running: running, in: &state, now: now)
            let began = ContinuousClock.now
            let loads = state.loads(now: now)
            let directives = scaler.decide(loads, now: now)
            for directive in directives {
                cluster.carryOut(directive, state: &state, now: now, at: time + options.bootDelay, wall: wall(time))
            }
            cluster.release(in: &state, now: now, wall: wall(time))
            report.decisions.append(micros(ContinuousClock.now - began))
            _ = state.takeChangedJobs()
            cluster.account(step: options.step, into: &report)
            if time - lastSample >= .seconds(60) {
                lastSample = time
                report.samples.append(cluster.sample(time: time, jobs: running.count, loads: loads))
            }
            time += options.step
        }
        report.events = state.events
        report.wallSeconds = seconds(ContinuousClock.now - wallStart)
        return report
    }

    func autoscalerSettings() -> Autoscaler.Settings {
        var settings = Autoscaler.Settings()
        for tier in Tier.allCases { settings.limits[.storage(tier)] = 1...options.maxServersPerTier }
        // Scaled to the step: a few reports below the band before a drain, one before acting again.
        settings.scaleDownAfter = options.step * 6
        settings.cooldown = options.step * 3
        return settings
    }

    /// Simulated time as Unix-like milliseconds from the start of the day, for events.
    func wall(_ time: Duration) -> Int64 { Int64(seconds(time) * 1000) }
}

func micros(_ duration: Duration) -> Double { seconds(duration) * 1e6 }

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A small deterministic generator for the trace (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
