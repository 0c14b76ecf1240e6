import Testing

@testable import PocketController
@testable import PocketProtocol

@Suite struct ControllerStateTests {
    let start = ContinuousClock.now

    func cluster(storage: Int = 2) throws -> ControllerState {
        var state = ControllerState()
        _ = try state.register(
            RegisterServer(kind: .metadata, tier: .dram, address: "127.0.0.1:1", capacityBytes: 1, throughput: 0),
            now: start)
        for index in 0..<storage {
            _ = try state.register(
                RegisterServer(
                    kind: .storage, tier: .dram, address: "127.0.0.1:\(100 + index)", capacityBytes: 1 << 30,
                    throughput: 1),
                now: start)
        }
        return state
    }

    @Test func silentServersDieAfterThreeSecondsAndReviveOnHeartbeat() throws {
        var state = try cluster()
        #expect(state.expire(now: start + .milliseconds(2900)).isEmpty)
        _ = try state.heartbeat(Heartbeat(serverID: 2, stats: ServerStats()), now: start + .milliseconds(2900))
        #expect(state.expire(now: start + .milliseconds(3100)) == [1, 3])
        #expect(state.storageTable.servers.map(\.state) == [.active, .dead])
        #expect(try state.heartbeat(Heartbeat(serverID: 3, stats: ServerStats()), now: start + .seconds(4)))
        #expect(state.storageTable.servers.map(\.state) == [.active, .active])
    }

    @Test func heartbeatsFromUnknownServersAskThemToRegister() throws {
        var state = try cluster()
        #expect { try state.heartbeat(Heartbeat(serverID: 99, stats: ServerStats()), now: start) } throws: {
            ($0 as? PocketError)?.code == .unknownServer
        }
    }

    @Test func aServerRegisteringAgainReplacesItsOldEntry() throws {
        var state = try cluster()
        _ = try state.register(
            RegisterServer(kind: .storage, tier: .dram, address: "127.0.0.1:100", capacityBytes: 5, throughput: 1),
            now: start)
        #expect(state.storageTable.servers.count == 2)
    }

    @Test func overcommittedJobsShareEveryLiveServer() throws {
        var state = try cluster(storage: 4)
        _ = state.expire(now: start + .seconds(5))
        _ = try state.heartbeat(Heartbeat(serverID: 1, stats: ServerStats()), now: start + .seconds(5))
        for id: ServerID in [2, 3, 4] {
            _ = try state.heartbeat(Heartbeat(serverID: id, stats: ServerStats()), now: start + .seconds(5))
        }
        // Default hints want two 64 GiB DRAM nodes; three live 1 GiB servers cannot give that, so the
        // job shares them all (over-committed), in proportion to their size, and never the dead one.
        let job = try #require(try state.admit(name: "j", hints: JobHints(), newID: 1, token: "t").job)
        #expect(job.info.weightMap.entries.map(\.server) == [2, 3, 4])
        #expect(job.info.allocation.overcommitted)
        for entry in job.info.weightMap.entries { #expect(abs(entry.weight - 1.0 / 3) < 1e-9) }
    }

    @Test func namesAreUniqueWhileTheJobLives() throws {
        var state = try cluster()
        _ = try state.admit(name: "j", hints: JobHints(), newID: 1, token: "t")
        #expect { try state.admit(name: "j", hints: JobHints(), newID: 2, token: "u") } throws: {
            ($0 as? PocketError)?.code == .alreadyExists
        }
        state.remove("j", persisted: false)
        #expect(try state.admit(name: "j", hints: JobHints(), newID: 3, token: "v").job?.info.id == 3)
    }

    @Test func aJobWithPersistedObjectsComesBackUnderItsOldId() throws {
        var state = try cluster()
        _ = try state.admit(name: "j", hints: JobHints(), newID: 1, token: "t")
        state.remove("j", persisted: true)
        #expect(try state.admit(name: "j", hints: JobHints(), newID: 2, token: "u").job?.info.id == 1)
    }

    @Test(arguments: ["", ".", "..", ".hidden", "a/b", "tab\there", String(repeating: "x", count: 256)])
    func badNamesAreRefused(_ name: String) throws {
        var state = try cluster()
        #expect { try state.admit(name: name, hints: JobHints(), newID: 1, token: "t") } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
    }

    @Test(arguments: [JobHints(maxLambdas: 0), JobHints(peakThroughput: 0), JobHints(capacity: 0)])
    func badHintsAreRefused(_ hints: JobHints) throws {
        var state = try cluster()
        #expect { try state.admit(name: "j", hints: hints, newID: 1, token: "t") } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
    }

    @Test func tokensAreChecked() throws {
        var state = try cluster()
        _ = try state.admit(name: "j", hints: JobHints(), newID: 1, token: "right")
        #expect(throws: Never.self) { try state.authorize(JobCredentials(name: "j", token: "right")) }
        #expect { try state.authorize(JobCredentials(name: "j", token: "wrong")) } throws: {
            ($0 as? PocketError)?.code == .unauthorized
        }
    }

    @Test func noMetadataServerMeansUnavailable() {
        var state = ControllerState()
        #expect { try state.admit(name: "j", hints: JobHints(), newID: 1, token: "t") } throws: {
            ($0 as? PocketError)?.code == .unavailable
        }
    }

    @Test func emptyWeightMapsAreRepairedWhenStorageArrives() throws {
        var state = try cluster(storage: 0)
        let job = try #require(try state.admit(name: "j", hints: JobHints(), newID: 1, token: "t").job)
        #expect(job.info.weightMap.entries.isEmpty)
        _ = try state.register(
            RegisterServer(kind: .storage, tier: .dram, address: "127.0.0.1:9", capacityBytes: 1, throughput: 1),
            now: start)
        #expect(state.repairWeightMaps().map(\.info.name) == ["j"])
        #expect(state.jobs["j"]!.info.weightMap.entries.count == 1)
    }
}
