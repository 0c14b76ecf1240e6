import Glibc
import Testing

@testable import PocketFUSE
@testable import PocketProtocol

@Suite struct HintAttributesTests {
    @Test(arguments: [
        ("user.pocket.latency_sensitive", "1", JobHints(latencySensitive: true)),
        ("user.pocket.latency_sensitive", "0\n", JobHints(latencySensitive: false)),
        ("user.pocket.max_lambdas", "100", JobHints(maxLambdas: 100)),
        ("user.pocket.peak_throughput", "8Gb/s", JobHints(peakThroughput: 1_000_000_000)),
        ("user.pocket.peak_throughput", "2 GB/s", JobHints(peakThroughput: 2_000_000_000)),
        ("user.pocket.capacity", "10GiB", JobHints(capacity: 10 << 30)),
        ("user.pocket.replication", "2\n", JobHints(replication: 2)),
    ])
    func hintsParseWithHumanUnits(_ name: String, _ value: String, _ expected: JobHints) throws {
        #expect(try HintAttributes.applying(name, value, to: JobHints()) == expected)
    }

    @Test(arguments: [
        ("user.pocket.latency_sensitive", "maybe"), ("user.pocket.max_lambdas", "0"),
        ("user.pocket.max_lambdas", "-1"), ("user.pocket.max_lambdas", "ten"),
        ("user.pocket.peak_throughput", "fast"), ("user.pocket.capacity", "0"), ("user.pocket.capacity", "1Gb"),
        ("user.pocket.replication", "0"), ("user.pocket.replication", "4"), ("user.pocket.replication", "two"),
    ])
    func badValuesAreInvalid(_ name: String, _ value: String) {
        #expect(throws: HintAttributes.Failure.self) { try HintAttributes.applying(name, value, to: JobHints()) }
    }

    @Test func readOnlyAndUnknownNamesAreRefused() {
        #expect(throws: HintAttributes.Failure.readOnly) {
            try HintAttributes.applying(HintAttributes.allocation, "x", to: JobHints())
        }
        #expect(throws: HintAttributes.Failure.unknown) {
            try HintAttributes.applying("user.other", "x", to: JobHints())
        }
    }

    @Test func removingAHintUnsetsIt() throws {
        let hints = JobHints(maxLambdas: 5, capacity: 7)
        #expect(try HintAttributes.applying(HintAttributes.maxLambdas, nil, to: hints) == JobHints(capacity: 7))
    }

    @Test func valuesShowWhatIsSet() {
        let job = JobInfo(
            name: "j", id: 1, hints: JobHints(maxLambdas: 3, capacity: 1 << 30),
            allocation: Allocation(
                tier: .dram, throughput: 1 << 30, capacity: 1 << 30, nodes: 1.07, costPerHour: 0.3681,
                overcommitted: true),
            weightMap: WeightMap([.init(server: 2, weight: 0.25), .init(server: 3, weight: 0.75)]), metadataAddress: "m"
        )
        #expect(
            HintAttributes.names(for: job.hints) == [
                HintAttributes.maxLambdas, HintAttributes.capacity, HintAttributes.allocation, HintAttributes.weightMap,
            ])
        #expect(HintAttributes.value(HintAttributes.capacity, job: job, servers: []) == "1 GiB")
        #expect(HintAttributes.value(HintAttributes.latencySensitive, job: job, servers: []) == nil)
        #expect(
            HintAttributes.value(HintAttributes.allocation, job: job, servers: [])
                == "tier=dram throughput=1 GiB/s capacity=1 GiB nodes=1.07 cost=$0.3681/h overcommitted")
        let server = ServerInfo(
            id: 3, kind: .storage, tier: .ssd, address: "127.0.0.1:9", state: .active, throughput: 1,
            stats: ServerStats())
        #expect(
            HintAttributes.value(HintAttributes.weightMap, job: job, servers: [server])
                == "2@?/?=0.25 3@127.0.0.1:9/ssd=0.75")
    }

    @Test func errnoMappingCoversEveryCode() {
        #expect(Errno.from(PocketError(.noSpace)) == ENOSPC)
        #expect(Errno.from(PocketError(.io)) == EIO)
        #expect(Errno.from(PocketError(.notFound)) == ENOENT)
        #expect(Errno.from(PocketError(.crossJob)) == EXDEV)
        #expect(Errno.from(PocketError(.notEmpty)) == ENOTEMPTY)
        for code in PocketError.Code.allCases { #expect(Errno.from(code) > 0) }
    }
}
