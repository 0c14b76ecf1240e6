import NIOCore
import PocketTestSupport
import Testing

@testable import PocketProtocol

/// One sample of every message, for round trips and malformed-input checks.
let samples: [(name: String, opcode: Opcode?, message: any WireMessage)] = {
    let auth = JobAuth(job: 42, token: "0123456789abcdef0123456789abcdef")
    let hints = JobHints(latencySensitive: true, maxLambdas: 100, peakThroughput: 1_000_000, capacity: 1 << 30)
    let map = WeightMap([.init(server: 1, weight: 0.25), .init(server: 2, weight: 0.75)])
    let blocks = [BlockRef(id: 7, server: 1), BlockRef(id: 8, server: 2)]
    var stats = ServerStats()
    stats.usedBytes = 123
    stats.capacityBytes = 1 << 30
    stats.blockCount = 2
    stats.cpu = 0.5
    stats.bytesInPerSecond = 10
    stats.bytesOutPerSecond = 20
    stats.requestsPerSecond = 30
    stats.jobCount = 4
    var server = ServerInfo(
        id: 3, kind: .storage, tier: .ssd, address: "127.0.0.1:9000", state: .draining, throughput: 1_000_000_000,
        stats: stats)
    server.allocatedThroughput = 7
    server.allocatedCapacity = 8
    let allocation = Allocation(
        tier: .dram, throughput: 5, capacity: 6, nodes: 0.25, costPerHour: 0.126, overcommitted: true)
    let job = JobInfo(
        name: "sort", id: 42, hints: hints, allocation: allocation,
        weightMap: map, metadataAddress: "127.0.0.1:7071")
    let entry = EntryInfo(
        node: 9, name: "part-0", kind: .symlink, size: 3, mode: 0o644, modified: 1, changed: 2, persist: true,
        symlinkTarget: "a/b")
    let table = ServerTable(servers: [
        StorageServerEntry(id: 1, address: "127.0.0.1:1", tier: .dram, state: .active, capacityBytes: 10)
    ])
    let data = ByteBuffer(bytes: Array(0..<200).map { UInt8($0) })
    let big = ByteBuffer(repeating: 0xAB, count: 70_000)
    let credentials = JobCredentials(name: "sort", token: "secret")
    let capability = Capability(
        job: 42, rights: [.read, .write], blocks: 3...900, expiry: 1_900_000_000, mac: 0xDEAD_BEEF << 64 | 7)
    let control = Capability(job: 0, rights: .control, blocks: Capability.everyBlock, expiry: 5, mac: 1)
    let record = JobRecord(id: 42, name: "sort", token: auth.token, hints: hints, weightMap: map)
    let replicated = [BlockRef(id: 3, server: 1, replicas: [2, 4]), BlockRef(id: 4, server: 2, replicas: [1]), .hole]
    return [
        ("Ping", Ping.opcode, Ping()),
        (
            "RegisterServer", RegisterServer.opcode,
            RegisterServer(kind: .storage, tier: .hdd, address: "[::1]:80", capacityBytes: 5, throughput: 6)
        ),
        (
            "RegisterServer again with a report", RegisterServer.opcode,
            RegisterServer(
                kind: .metadata, tier: .dram, address: "127.0.0.1:7071", capacityBytes: 5, throughput: 0, previousID: 7,
                knownServers: table.servers + [
                    StorageServerEntry(id: 9, address: "127.0.0.1:2", tier: .hdd, state: .dead, capacityBytes: 11)
                ],
                jobs: [
                    record, JobRecord(id: 43, name: "empty", token: "u", hints: JobHints(), weightMap: WeightMap()),
                ],
                retiredJobs: [RetiredJob(id: 40, name: "kept")], proof: control)
        ),
        ("JobRecord", nil, record),
        ("RegisterServerReply", nil, RegisterServerReply(serverID: 1, blockSize: 65536, inlineLimit: 8192)),
        ("Heartbeat", Heartbeat.opcode, Heartbeat(serverID: 2, stats: stats)),
        (
            "Heartbeat with reports", Heartbeat.opcode,
            Heartbeat(serverID: 2, stats: stats, placedBytes: [3: 65536, 4: 1], jobBytes: [42: 7], proof: control)
        ),
        ("ListEvents", ListEvents.opcode, ListEvents(since: 17)),
        (
            "EventList", nil,
            EventList(events: [
                ScalingEvent(
                    time: 1, action: .drain, kind: .storage, tier: .ssd, count: 1, servers: 2, utilisation: 0.4,
                    reason: "r")
            ])
        ),
        ("RegisterJob", RegisterJob.opcode, RegisterJob(name: "sort", hints: hints)),
        ("RegisterJob no hints", RegisterJob.opcode, RegisterJob(name: "x", hints: JobHints())),
        ("JobGrant", nil, JobGrant(jobID: 1, token: "t", metadataAddress: "a:1", blockSize: 2, inlineLimit: 3)),
        ("DeregisterJob", DeregisterJob.opcode, DeregisterJob(job: credentials)),
        ("LookupJob", LookupJob.opcode, LookupJob(job: credentials)),
        ("ListJobs", ListJobs.opcode, ListJobs()),
        ("JobList", nil, JobList(jobs: [job, job])),
        ("ClusterStatusRequest", ClusterStatusRequest.opcode, ClusterStatusRequest()),
        ("ClusterStatus", nil, ClusterStatus(blockSize: 65536, servers: [server], jobs: [job])),
        ("UpdateHints", UpdateHints.opcode, UpdateHints(job: credentials, hints: JobHints(capacity: 9))),
        (
            "AssignJob", AssignJob.opcode,
            AssignJob(capability: control, jobID: 1, name: "sort", token: "t", hints: hints, weightMap: map)
        ),
        ("DropJob", DropJob.opcode, DropJob(capability: control, jobID: 5)),
        ("DropJobReply", nil, DropJobReply(freed: FreeReply(blocks: 1, bytes: 2), persistedObjects: 3)),
        ("ServerTable", ServerTable.opcode, table),
        ("ServerTable signed", ServerTable.opcode, ServerTable(capability: control, servers: table.servers)),
        (
            "SetWeightMap", SetWeightMap.opcode,
            SetWeightMap(capability: control, jobID: 1, hints: JobHints(replication: 2), weightMap: map)
        ),
        ("PutInline", PutInline.opcode, PutInline(auth: auth, path: "a/b", persist: true, data: data)),
        ("GetObject", GetObject.opcode, GetObject(auth: auth, path: "a/b", deleteAfterRead: true)),
        ("ObjectLocation inline", nil, ObjectLocation(size: 200, blockSize: 65536, inline: data, blocks: [])),
        ("ObjectLocation blocks", nil, ObjectLocation(size: 70_000, blockSize: 65536, inline: nil, blocks: blocks)),
        ("AllocateBlocks", AllocateBlocks.opcode, AllocateBlocks(auth: auth, count: 16)),
        ("BlockList", nil, BlockList(blocks: blocks)),
        ("Committed", nil, Committed(changed: 1_764_000_000_123_456_789)),
        (
            "CommitObject", CommitObject.opcode,
            CommitObject(auth: auth, path: "p", persist: false, size: 70_000, blocks: blocks)
        ),
        ("AbortBlocks", AbortBlocks.opcode, AbortBlocks(auth: auth, blocks: blocks)),
        ("Stat", Stat.opcode, Stat(auth: auth, path: "p")),
        ("EntryInfo", nil, entry),
        ("List", List.opcode, List(auth: auth, path: "/", prefix: "pa")),
        ("EntryList", nil, EntryList(entries: [entry, entry])),
        ("Delete", Delete.opcode, Delete(auth: auth, path: "d", recursive: true, kind: .directory)),
        ("Rename", Rename.opcode, Rename(auth: auth, from: "a", to: "b", noReplace: true)),
        ("Create", Create.opcode, Create(auth: auth, path: "f", mode: 0o600, exclusive: false)),
        ("MakeSymlink", MakeSymlink.opcode, MakeSymlink(auth: auth, path: "l", target: "../t")),
        ("SetAttributes", SetAttributes.opcode, SetAttributes(auth: auth, path: "f", mode: 0o700, modified: 5)),
        ("SetAttributes none", SetAttributes.opcode, SetAttributes(auth: auth, path: "f")),
        ("MakeDirectory", MakeDirectory.opcode, MakeDirectory(auth: auth, path: "d/e", parents: true)),
        ("GetServers", GetServers.opcode, GetServers()),
        (
            "WriteBlocks", WriteBlocks.opcode,
            WriteBlocks(
                jobID: 42, capabilities: [capability, control],
                blocks: [.init(id: 1, data: data), .init(id: 2, data: big)])
        ),
        (
            "ReadBlocks", ReadBlocks.opcode,
            ReadBlocks(
                jobID: 42, capabilities: [capability],
                ranges: [BlockRange(id: 1), BlockRange(id: 2, offset: 10, length: 20)])
        ),
        ("BlockData", nil, BlockData(blocks: [data, big, ByteBuffer()])),
        ("FreeBlocks", FreeBlocks.opcode, FreeBlocks(jobID: 42, capability: capability, ids: [1, 2, 3])),
        ("FreeJob", FreeJob.opcode, FreeJob(jobID: 42, capability: capability)),
        ("Capability", nil, capability),
        ("AuthorizeBlocks", AuthorizeBlocks.opcode, AuthorizeBlocks(auth: auth, rights: .write, blocks: 7...9)),
        (
            "ObjectLocation replicated", nil,
            ObjectLocation(size: 140_000, blockSize: 65536, inline: nil, blocks: replicated, capability: capability)
        ),
        ("BlockList replicated", nil, BlockList(blocks: replicated, capability: capability)),
        ("FreeReply", nil, FreeReply(blocks: 4, bytes: 5)),
        ("StorageStats", StorageStats.opcode, StorageStats()),
        ("ServerStats", nil, stats),
        ("Empty", nil, Empty()),
    ]
}()

/// Encodes `message` into a frame and returns the frame's bytes, contiguous.
func frameBytes(_ message: some WireMessage, opcode: Opcode = .ping, requestID: UInt64 = 99) -> ByteBuffer {
    var all = ByteBuffer()
    for var part in WireWriter.frame(message, header: FrameHeader(opcode: opcode, requestID: requestID)) {
        all.writeBuffer(&part)
    }
    return all
}

/// The payload alone (what a decoder sees).
func payloadBytes(_ message: some WireMessage) -> ByteBuffer {
    var bytes = frameBytes(message)
    bytes.moveReaderIndex(forwardBy: FrameHeader.size)
    return bytes
}

func decodeAgain<M: WireMessage>(_ message: M) throws -> M {
    var decoder = FrameDecoder()
    var bytes = frameBytes(message)
    guard case .frame(let frame) = decoder.decode(buffer: &bytes) else {
        throw PocketError(.malformed, "no frame")
    }
    #expect(frame.header.requestID == 99)
    #expect(bytes.readableBytes == 0)
    return try frame.decode(M.self)
}

/// The canonical encoding: equal messages encode to equal bytes (ByteBuffers compare by content).
func sameEncoding(_ a: some WireMessage, _ b: some WireMessage) -> Bool {
    payloadBytes(a) == payloadBytes(b)
}

@Suite struct MessageCodecTests {
    @Test(arguments: samples.indices)
    func everyMessageSurvivesARoundTrip(_ index: Int) throws {
        let sample = samples[index]
        func check<M: WireMessage>(_ message: M) throws {
            let decoded = try decodeAgain(message)
            #expect(sameEncoding(decoded, message), "\(sample.name) changed in a round trip")
            if let message = message as? any Hashable, let decoded = decoded as? any Hashable {
                #expect(AnyHashable(message) == AnyHashable(decoded), "\(sample.name) decoded to a different value")
            }
        }
        try check(sample.message)
    }

    @Test func blockDataSurvivesByteForByte() throws {
        let original = WriteBlocks(
            jobID: 1, capabilities: [],
            blocks: [.init(id: 9, data: ByteBuffer(bytes: (0..<100_000).map { UInt8($0 % 251) }))])
        let decoded = try decodeAgain(original)
        #expect(decoded.blocks.count == 1)
        #expect(decoded.blocks[0].id == 9)
        #expect(decoded.blocks[0].data == original.blocks[0].data)
    }

    @Test(arguments: samples.indices)
    func everyTruncationIsRejected(_ index: Int) {
        let sample = samples[index]
        let full = payloadBytes(sample.message)
        func attempt<M: WireMessage>(_: M.Type) {
            for length in 0..<full.readableBytes {
                let frame = Frame(
                    header: FrameHeader(opcode: .ping, requestID: 1),
                    payload: full.getSlice(at: full.readerIndex, length: length)!)
                #expect(throws: PocketError.self, "\(sample.name) accepted \(length) of \(full.readableBytes) bytes") {
                    try frame.decode(M.self)
                }
            }
        }
        func open<M: WireMessage>(_ message: M) { attempt(M.self) }
        open(sample.message)
    }

    @Test(arguments: samples.indices)
    func trailingBytesAreRejected(_ index: Int) {
        let sample = samples[index]
        var payload = payloadBytes(sample.message)
        payload.writeInteger(UInt8(0))
        func open<M: WireMessage>(_ message: M) {
            let frame = Frame(header: FrameHeader(opcode: .ping, requestID: 1), payload: payload)
            #expect(throws: PocketError.self) { try frame.decode(M.self) }
        }
        open(sample.message)
    }

    /// Random payloads must decode or throw PocketError, never trap or allocate without bound.
    @Test(arguments: samples.indices)
    func randomBytesNeverCrashADecoder(_ index: Int) {
        var generator = SplitMix64(seed: UInt64(index) &+ 0x5EED)
        let sample = samples[index]
        let valid = payloadBytes(sample.message)
        func open<M: WireMessage>(_ message: M) {
            for round in 0..<300 {
                var bytes: ByteBuffer
                if round % 2 == 0 {
                    let count = Int(generator.next() % 96)
                    bytes = ByteBuffer(bytes: (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
                } else {
                    // Flip a few bytes of a valid encoding: lengths and counts become garbage.
                    var mutated = Array(valid.readableBytesView)
                    guard !mutated.isEmpty else { continue }
                    for _ in 0..<3 {
                        mutated[Int(generator.next() % UInt64(mutated.count))] = UInt8(
                            truncatingIfNeeded: generator.next())
                    }
                    bytes = ByteBuffer(bytes: mutated)
                }
                let frame = Frame(header: FrameHeader(opcode: .ping, requestID: 1), payload: bytes)
                do {
                    _ = try frame.decode(M.self)
                } catch {
                    #expect(error is PocketError)
                }
            }
        }
        open(sample.message)
    }

    @Test func badEnumValuesAndBooleansAreMalformed() {
        var payload = ByteBuffer()
        payload.writeInteger(UInt8(9))  // no such ServerKind
        let frame = Frame(header: FrameHeader(opcode: .registerServer, requestID: 1), payload: payload)
        #expect(throws: PocketError.self) { try frame.decode(RegisterServer.self) }

        var boolean = ByteBuffer()
        boolean.writeInteger(UInt64(1))
        boolean.writeInteger(UInt8(2))
        #expect(throws: PocketError.self) {
            try Frame(header: FrameHeader(opcode: .delete, requestID: 1), payload: boolean).decode(GetObject.self)
        }
    }

    @Test func forgedCountsAreRejectedBeforeAllocating() {
        var payload = ByteBuffer()
        payload.writeInteger(UInt64(1))  // job
        payload.writeInteger(UInt32.max)  // four billion ids, no bytes behind them
        let frame = Frame(header: FrameHeader(opcode: .freeBlocks, requestID: 1), payload: payload)
        #expect(throws: PocketError.self) { try frame.decode(FreeBlocks.self) }
    }

    @Test func errorFramesCarryCodeAndMessage() {
        var decoder = FrameDecoder()
        var bytes = ByteBuffer()
        for var part in WireWriter.errorFrame(PocketError(.noSpace, "full"), opcode: .writeBlocks, requestID: 5) {
            bytes.writeBuffer(&part)
        }
        guard case .frame(let frame) = decoder.decode(buffer: &bytes) else {
            Issue.record("no frame")
            return
        }
        #expect(frame.header.isResponse)
        #expect(frame.header.requestID == 5)
        #expect(frame.error == PocketError(.noSpace, "full"))
    }

    /// A job report carries tokens; printing it (a log line, a failed expectation) must not show them.
    @Test func aJobRecordsDescriptionLeavesTheTokenOut() {
        let record = JobRecord(id: 1, name: "sort", token: "s3cr3t-token", hints: JobHints(), weightMap: WeightMap())
        let registration = RegisterServer(
            kind: .metadata, tier: .dram, address: "a:1", capacityBytes: 1, throughput: 0, jobs: [record])
        for text in ["\(record)", String(reflecting: record), "\(registration)", String(reflecting: registration)] {
            #expect(!text.contains("s3cr3t"), "\(text)")
            #expect(text.contains("sort"))
        }
    }

    /// Found by fuzzing: a heartbeat repeating a key used to add the values up and overflow.
    @Test func aHeartbeatRepeatingAKeyIsMalformed() throws {
        var payload = ByteBuffer()
        payload.writeInteger(ServerID(1))
        var writer = WireWriter(header: FrameHeader(opcode: .heartbeat, requestID: 1))
        ServerStats().encode(into: &writer)
        var parts = writer.finish()
        parts[0].moveReaderIndex(forwardBy: FrameHeader.size)
        payload.writeBuffer(&parts[0])
        payload.writeInteger(UInt32(2))
        for _ in 0..<2 {
            payload.writeInteger(ServerID(3))
            payload.writeInteger(UInt64.max)
        }
        payload.writeInteger(UInt32(0))
        let frame = Frame(header: FrameHeader(opcode: .heartbeat, requestID: 1), payload: payload)
        #expect { try frame.decode(Heartbeat.self) } throws: { ($0 as? PocketError)?.code == .malformed }
    }
}
