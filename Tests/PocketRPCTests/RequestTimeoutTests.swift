import NIOCore
import NIOEmbedded
import PocketProtocol
import Synchronization
import Testing

@testable import PocketRPC

/// A client connection's request deadlines follow its event loop's clock, so they are tested on a
/// virtual one: a request fails with `timedOut` exactly at its deadline, an answer before it wins,
/// and one timer serves requests of different timeouts.
@Suite struct RequestTimeoutTests {
    /// A connected channel with the client's handler, and a way to send a Ping through it.
    struct Client {
        let channel: EmbeddedChannel
        let handler: ClientConnectionHandler

        init() throws {
            handler = ClientConnectionHandler(endpoint: Endpoint(host: "127.0.0.1", port: 1))
            channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// Sends a Ping with `timeout`; returns its outcome box and the request id it went out with.
        func ping(timeout: TimeAmount) throws -> (Outcome, UInt64) {
            let promise = channel.eventLoop.makePromise(of: Frame.self)
            let outcome = Outcome()
            promise.futureResult.whenComplete { result in outcome.value.withLock { $0 = result } }
            let parts = WireWriter.frame(Ping(), header: FrameHeader(opcode: Ping.opcode, requestID: 0))
            handler.enqueue(parts, promise: promise, timeout: timeout)
            channel.embeddedEventLoop.run()  // the scheduled flush
            var sent = try #require(try channel.readOutbound(as: ByteBuffer.self))
            while let more = try channel.readOutbound(as: ByteBuffer.self) { sent.writeImmutableBuffer(more) }
            return (outcome, try #require(sent.getInteger(at: sent.readerIndex + 8, as: UInt64.self)))
        }

        func answer(_ requestID: UInt64) throws {
            let header = FrameHeader(opcode: Ping.opcode, isResponse: true, requestID: requestID)
            try channel.writeInbound(FrameEvent.frame(Frame(header: header, payload: ByteBuffer())))
        }

        func advance(_ amount: TimeAmount) { channel.embeddedEventLoop.advanceTime(by: amount) }
    }

    final class Outcome: Sendable {
        let value = Mutex<Result<Frame, any Error>?>(nil)

        var isPending: Bool { value.withLock { $0 == nil } }
        var succeeded: Bool { value.withLock { if case .success = $0 { true } else { false } } }
        var code: PocketError.Code? {
            value.withLock {
                guard case .failure(let error) = $0 else { return nil }
                return (error as? PocketError)?.code
            }
        }
    }

    @Test func aRequestTimesOutAtItsDeadlineAndNotBefore() throws {
        let client = try Client()
        let (outcome, _) = try client.ping(timeout: .seconds(10))
        client.advance(.milliseconds(9_999))
        #expect(outcome.isPending)
        client.advance(.milliseconds(1))
        #expect(outcome.code == .timedOut)
        _ = try client.channel.finish()
    }

    @Test func anAnswerBeforeTheDeadlineWinsAndALateOneIsIgnored() throws {
        let client = try Client()
        let (answered, answeredID) = try client.ping(timeout: .seconds(10))
        let (late, lateID) = try client.ping(timeout: .seconds(1))
        client.advance(.milliseconds(500))
        try client.answer(answeredID)
        #expect(answered.succeeded)
        client.advance(.milliseconds(500))
        #expect(late.code == .timedOut)
        try client.answer(lateID)  // after its timeout: dropped, the connection goes on
        client.advance(.seconds(20))
        #expect(answered.succeeded, "an answered request is never timed out afterwards")
        #expect(client.channel.isActive)
        _ = try client.channel.finish()
    }

    @Test func oneTimerServesRequestsOfDifferentTimeouts() throws {
        let client = try Client()
        // A long one first, then a shorter one: the timer must move earlier for it.
        let (long, _) = try client.ping(timeout: .seconds(10))
        let (short, _) = try client.ping(timeout: .seconds(2))
        client.advance(.seconds(2))
        #expect(short.code == .timedOut)
        #expect(long.isPending)
        // One sent later whose deadline falls between: each fails at its own deadline.
        let (middle, _) = try client.ping(timeout: .seconds(5))  // due at 7 s
        client.advance(.milliseconds(4_999))
        #expect(middle.isPending && long.isPending)
        client.advance(.milliseconds(1))
        #expect(middle.code == .timedOut)
        #expect(long.isPending)
        client.advance(.seconds(3))
        #expect(long.code == .timedOut)
        _ = try client.channel.finish()
    }

    @Test func aClosedConnectionFailsWhatIsInFlightAsUnavailable() throws {
        let client = try Client()
        let (outcome, _) = try client.ping(timeout: .seconds(10))
        client.channel.pipeline.fireChannelInactive()
        #expect(outcome.code == .unavailable)
        client.advance(.seconds(20))
        #expect(outcome.code == .unavailable, "failed once, not timed out later")
        _ = try? client.channel.finish()
    }
}
