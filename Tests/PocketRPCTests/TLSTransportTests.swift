import Foundation
import Logging
import NIOCore
import NIOPosix
import PocketProtocol
import PocketRPC
import PocketTestSupport
import ServiceLifecycle
import Synchronization
import Testing

/// RPC servers and connections over TLS on real loopback sockets: what verifies, what is refused
/// and how clearly, and that nothing a peer sends brings a TLS server down. Every server and client
/// here is given its `TransportSecurity` explicitly; the process-wide one stays plain.
@Suite struct TLSTransportTests {
    /// Answers pings, and keeps the blocks it is sent.
    final class Recorder: RequestHandler {
        let blocks = Mutex<[ByteBuffer]>([])

        func handle(_ request: Frame) -> Reply {
            switch request.header.opcode {
            case .ping:
                return request.serve(Ping.self) { _ in Empty() }
            case .writeBlocks:
                return request.serve(WriteBlocks.self) { write in
                    blocks.withLock { $0 += write.blocks.map(\.data) }
                    return Empty()
                }
            default:
                return .error(PocketError(.unknownOpcode))
            }
        }
    }

    struct Material {
        var authority: TestCertificates.Authority
        var server: TestCertificates.Identity
        /// Serves with `server`'s certificate; trusts `authority`.
        var security: TransportSecurity
        /// Trusts `authority` only.
        var client: TransportSecurity
    }

    static let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func withMaterial<T>(_ body: (TestCertificates, Material) async throws -> T) async throws -> T {
        try await TestCertificates.withTemporaryDirectory { certificates in
            let authority = try certificates.authority("ca")
            let server = try certificates.server("server", signedBy: authority)
            let security = try TransportSecurity(
                .init(certificate: server.certificate, key: server.key, trustRoots: authority.certificate))
            let client = try TransportSecurity(.init(trustRoots: authority.certificate))
            return try await body(
                certificates, Material(authority: authority, server: server, security: security, client: client))
        }
    }

    /// Runs `body` against a server bound to a free loopback port, then shuts it down.
    func withServer<T>(
        _ security: TransportSecurity, handler: any RequestHandler = Recorder(),
        configuration: RPCServer.Configuration = .init(), _ body: (Endpoint) async throws -> T
    ) async throws -> T {
        let server = try await RPCServer.bind(
            Endpoint(host: "127.0.0.1", port: 0), handler: handler, configuration: configuration,
            logger: Self.logger, security: security)
        let group = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: Self.logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body(server.localAddress)) } catch { result = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }

    /// The error `body` throws, and how long it took to throw it.
    func failure(_ body: () async throws -> Void) async -> (error: PocketError?, seconds: Double) {
        let start = ContinuousClock.now
        do {
            try await body()
            return (nil, (ContinuousClock.now - start) / .seconds(1))
        } catch {
            return (error as? PocketError, (ContinuousClock.now - start) / .seconds(1))
        }
    }

    @Test func aVerifiedClientPipelinesCallsAndBlocksOverTLS() async throws {
        try await withMaterial { _, material in
            let recorder = Recorder()
            try await withServer(material.security, handler: recorder) { endpoint in
                let connection = try await RPCConnection.connect(to: endpoint, security: material.client)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<64 { group.addTask { _ = try await connection.call(Ping()) } }
                    try await group.waitForAll()
                }
                // Big blocks: written as separate buffers, which TLS must frame like any other bytes.
                var generator = SplitMix64(seed: 7)
                let blocks = (0..<16).map { index in
                    var data = ByteBuffer()
                    for _ in 0..<(256 << 10) / 8 { data.writeInteger(generator.next()) }
                    return WriteBlocks.Block(id: BlockID(index), data: data)
                }
                _ = try await connection.call(WriteBlocks(jobID: 1, capabilities: [], blocks: blocks))
                #expect(recorder.blocks.withLock { $0 } == blocks.map(\.data))
                await connection.close()
            }
        }
    }

    @Test func aPlainClientIsToldTheServerTakesOnlyTLS() async throws {
        try await withMaterial { _, material in
            try await withServer(material.security) { endpoint in
                // The server's answer, not the call's timeout: `unauthorized` and a message saying why
                // (a timeout would be `timedOut`). How long it takes is scripts/faults's to measure.
                let (error, _) = await failure {
                    let connection = try await RPCConnection.connect(to: endpoint, security: .plain)
                    defer { Task { await connection.close() } }
                    _ = try await connection.call(Ping())
                }
                #expect(error?.code == .unauthorized)
                #expect(error?.message.contains("accepts only TLS connections") == true, "\(String(describing: error))")
            }
        }
    }

    @Test func aTLSClientToAPlainServerFailsAtConnect() async throws {
        try await withMaterial { _, material in
            try await withServer(.plain) { endpoint in
                // A failure, not a timeout: the code and the message say so.
                let (error, _) = await failure {
                    _ = try await RPCConnection.connect(to: endpoint, security: material.client)
                }
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("TLS handshake with \(endpoint) failed") == true)
                #expect(error?.message.contains("is it serving TLS?") == true, "\(String(describing: error))")
            }
        }
    }

    @Test func aTLSClientToASilentServerGivesUpAtTheConnectTimeout() async throws {
        try await withMaterial { _, material in
            // Accepts and never answers.
            let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let endpoint = Endpoint(host: "127.0.0.1", port: silent.localAddress!.port!)
            let (error, seconds) = await failure {
                _ = try await RPCConnection.connect(to: endpoint, security: material.client)
            }
            try await silent.close()
            #expect(error?.code == .timedOut)
            #expect(
                error?.message.contains("TLS handshake with \(endpoint) failed") == true, "\(String(describing: error))"
            )
            // It gives up, and not before the timeout (a loaded machine can only make it later).
            let limit = Double(RPCConnection.connectTimeout.nanoseconds) / 1e9
            #expect(seconds >= limit - 0.1, "gave up after \(seconds) s, before the \(limit) s timeout")
        }
    }

    @Test func aServerSignedByAnotherCAIsRefused() async throws {
        try await withMaterial { certificates, material in
            let stranger = try certificates.authority("stranger")
            let trustsStranger = try TransportSecurity(.init(trustRoots: stranger.certificate))
            try await withServer(material.security) { endpoint in
                let (error, _) = await failure {
                    _ = try await RPCConnection.connect(to: endpoint, security: trustsStranger)
                }
                #expect(
                    error?.message.contains("not signed by a CA this client trusts") == true,
                    "\(String(describing: error))")
            }
        }
    }

    @Test func aCertificateForAnotherNameOrAddressIsRefused() async throws {
        try await withMaterial { certificates, material in
            // Signed by the trusted CA, but for a name that is not this server's.
            let elsewhere = try certificates.server(
                "elsewhere", signedBy: material.authority, subjectAltName: "DNS:pocket.example")
            let security = try TransportSecurity(
                .init(
                    certificate: elsewhere.certificate, key: elsewhere.key, trustRoots: material.authority.certificate))
            try await withServer(security) { endpoint in
                for host in ["127.0.0.1", "localhost"] {
                    let (error, _) = await failure {
                        _ = try await RPCConnection.connect(
                            to: Endpoint(host: host, port: endpoint.port), security: material.client)
                    }
                    #expect(
                        error?.message.contains("its certificate is not for \(host)") == true,
                        "\(String(describing: error))")
                }
            }
        }
    }

    @Test func aServerIsReachedByTheNameItsCertificateGives() async throws {
        try await withMaterial { certificates, material in
            let named = try certificates.server("named", signedBy: material.authority, subjectAltName: "DNS:localhost")
            let security = try TransportSecurity(
                .init(certificate: named.certificate, key: named.key, trustRoots: material.authority.certificate))
            try await withServer(security) { endpoint in
                let connection = try await RPCConnection.connect(
                    to: Endpoint(host: "localhost", port: endpoint.port), security: material.client)
                _ = try await connection.call(Ping())
                await connection.close()
            }
        }
    }

    /// Bytes no client should send, each on its own connection.
    static let garbage: [(String, [UInt8])] = {
        var generator = SplitMix64(seed: 42)
        let random = (0..<70_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        // A frame header that looks like Pocket's apart from its version byte.
        let wrongVersion: [UInt8] = [0, 0, 0, 12, 9, 1, 0, 0] + Array(repeating: 0, count: 8)
        // A TLS record header claiming a handshake, then nonsense.
        let fakeRecord: [UInt8] = [0x16, 0x03, 0x01, 0x01, 0x00] + random.prefix(300)
        return [
            ("random bytes", random), ("a frame of the wrong version", wrongVersion),
            ("a broken TLS record", fakeRecord), ("a TLS record cut short", [0x16, 0x03, 0x01]),
            ("three plain bytes", [0, 0, 0]),
        ]
    }()

    @Test(arguments: 0..<garbage.count) func garbageIsDroppedAndTheServerGoesOn(_ index: Int) async throws {
        let (_, bytes) = Self.garbage[index]
        try await withMaterial { _, material in
            var configuration = RPCServer.Configuration()
            configuration.handshakeTimeout = .seconds(2)
            try await withServer(material.security, configuration: configuration) { endpoint in
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: endpoint.host, port: endpoint.port).get()
                // On a loaded machine the server may already have given up on the silent connection.
                try? await channel.writeAndFlush(ByteBuffer(bytes: bytes))
                // The server closes it: at once for what it can tell is wrong, at the handshake
                // timeout for what might still become a handshake (60 s: a hang guard).
                let closed = await isClosedByPeer(channel, within: .seconds(60))
                #expect(closed, "the server kept a connection that sent \(Self.garbage[index].0)")
                let connection = try await RPCConnection.connect(to: endpoint, security: material.client)
                _ = try await connection.call(Ping())
                await connection.close()
            }
        }
    }
}
