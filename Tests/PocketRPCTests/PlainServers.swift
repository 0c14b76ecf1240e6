import Logging
import NIOCore
import PocketProtocol
import PocketTestSupport
import ServiceLifecycle

@testable import PocketRPC

/// Runs `body` against a plain-TCP server bound to a free loopback port, then shuts it down.
func withPlainServer(
    _ handler: any RequestHandler, configuration: RPCServer.Configuration = .init(),
    _ body: (Endpoint) async throws -> Void
) async throws {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    let server = try await RPCServer.bind(
        Endpoint(host: "127.0.0.1", port: 0), handler: handler, configuration: configuration, logger: logger,
        security: .plain)
    let group = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let outcome: Result<Void, any Error>
        do {
            try await body(server.localAddress)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        try outcome.get()
    }
}

/// Whether the peer closes `channel` before `limit` (a hang guard); the channel is closed either way.
func isClosedByPeer(_ channel: any Channel, within limit: Duration) async -> Bool {
    var closed = true
    do {
        try await eventually("the peer to close the connection", deadline: limit) { !channel.isActive }
    } catch {
        closed = false
    }
    try? await channel.close()
    return closed
}
