import NIOCore
import NIOEmbedded
import NIOPosix
import PocketProtocol
import Testing

@testable import PocketRPC

/// A frame begun must arrive whole within the deadline; complete frames, however split, never trip it.
@Suite struct FrameDeadlineTests {
    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: FrameReader(frameTimeout: .seconds(30)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func aTricklingFrameIsCutOff() throws {
        let channel = try channel()
        var (stream, _) = FrameStreams.stream([100])
        // Three bytes every ten seconds: never idle, never done.
        for _ in 0..<3 {
            try channel.writeInbound(stream.readSlice(length: 3)!)
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        }
        #expect(!channel.isActive)
    }

    @Test func eachFrameHasItsOwnDeadline() throws {
        let channel = try channel()
        var (stream, bodies) = FrameStreams.stream([20_000, 20_000, 20_000])
        // Every read ends inside a frame, so a frame is always partial; each one completes within
        // 30 s of its start, though the connection never lacks a partial frame for 60 s.
        let frameSize = stream.readableBytes / 3
        try channel.writeInbound(stream.readSlice(length: frameSize / 2)!)
        for _ in 0..<2 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(20))
            try channel.writeInbound(stream.readSlice(length: frameSize)!)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        #expect(channel.isActive)
        try channel.writeInbound(stream.readSlice(length: stream.readableBytes)!)
        _ = try FrameStreams.expectFrames(FrameStreams.frames(channel), carrying: bodies)
        channel.embeddedEventLoop.advanceTime(by: .minutes(5))
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func completeFramesInPiecesPassWhole() throws {
        let channel = try channel()
        var (stream, bodies) = FrameStreams.stream([0, 5, 70_000, 1])
        // In odd pieces, each quickly after the last, for longer than the deadline in all.
        var events: [FrameEvent] = []
        while stream.readableBytes > 0 {
            try channel.writeInbound(stream.readSlice(length: min(7_777, stream.readableBytes))!)
            channel.embeddedEventLoop.advanceTime(by: .seconds(3))
            events += try FrameStreams.frames(channel)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        _ = try FrameStreams.expectFrames(events, carrying: bodies)
        _ = try channel.finish()
    }

    @Test func betweenFramesNoDeadlineApplies() throws {
        let channel = try channel()
        let (stream, _) = FrameStreams.stream([10])
        try channel.writeInbound(stream)
        channel.embeddedEventLoop.advanceTime(by: .minutes(5))
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    struct Pong: RequestHandler {
        func handle(_ request: Frame) -> Reply { request.serve(Ping.self) { _ in Empty() } }
    }

    @Test func aServerClosesAStalledFrameAndServesOthers() async throws {
        var configuration = RPCServer.Configuration()
        configuration.frameTimeout = .milliseconds(300)
        try await withPlainServer(Pong(), configuration: configuration) { endpoint in
            let stalled = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: endpoint.host, port: endpoint.port).get()
            var (stream, _) = FrameStreams.stream([1_000])
            try await stalled.writeAndFlush(stream.readSlice(length: 100)!)
            // Whole requests on another connection are answered while the stalled one waits and after
            // it is closed (60 s: a hang guard against a deadline that never fires).
            let connection = try await RPCConnection.connect(to: endpoint, security: .plain)
            _ = try await connection.call(Ping())
            let closed = await isClosedByPeer(stalled, within: .seconds(60))
            #expect(closed)
            _ = try await connection.call(Ping())
            #expect(connection.isActive)
            await connection.close()
        }
    }
}
