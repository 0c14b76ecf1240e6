import NIOCore
import NIOPosix
import PocketProtocol
import Testing

@testable import PocketRPC

/// A pool that follows its callers gives a caller running on an event loop that loop's connection;
/// one that does not hands its connections out in turn.
@Suite struct ConnectionPoolTests {
    struct Pong: RequestHandler {
        func handle(_ request: Frame) -> Reply { request.serve(Ping.self) { _ in Empty() } }
    }

    /// Runs a task's jobs on one event loop, as NIO's global executor does for tasks on its loops.
    final class LoopExecutor: TaskExecutor {
        let loop: any EventLoop
        init(_ loop: any EventLoop) { self.loop = loop }
        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            let executor = asUnownedTaskExecutor()
            loop.execute { job.runSynchronously(on: executor) }
        }
    }

    @Test func aCallerOnALoopUsesThatLoopsConnection() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = ConnectionPool(width: 2, followingCallers: true, group: loops, security: .plain)
        try await withPlainServer(Pong()) { endpoint in
            let each = Array(loops.makeIterator())
            for loop in [each[1], each[0], each[0], each[1]] {
                let connection = try await withTaskExecutorPreference(LoopExecutor(loop)) {
                    _ = try await pool.call(endpoint, Ping())
                    return try await pool.connection(to: endpoint)
                }
                #expect(connection.eventLoop === loop)
            }
        }
        await pool.closeAll()
        try await loops.shutdownGracefully()
    }

    @Test func otherCallersTakeTheConnectionsInTurn() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = ConnectionPool(width: 2, group: loops, security: .plain)
        try await withPlainServer(Pong()) { endpoint in
            var seen: [ObjectIdentifier] = []
            for _ in 0..<4 { seen.append(ObjectIdentifier(try await pool.connection(to: endpoint))) }
            #expect(Set(seen).count == 2)
            #expect(seen[0] == seen[2] && seen[1] == seen[3])
        }
        await pool.closeAll()
        try await loops.shutdownGracefully()
    }
}
