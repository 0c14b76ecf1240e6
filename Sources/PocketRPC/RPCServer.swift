import Logging
import NIOCore
import NIOPosix
import PocketProtocol
import ServiceLifecycle
import Synchronization

/// A TCP server speaking Pocket frames, over TLS only when `security` has a server side. `bind` opens
/// the socket (so the bound address is known before the server announces itself); `run` serves until
/// graceful shutdown or cancellation.
public final class RPCServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var maxFrameSize = FrameDecoder.defaultMaxFrameSize
        public var maxConnections = 4096
        /// A connection that sends nothing for this long is closed.
        public var idleTimeout: TimeAmount = .minutes(10)
        /// A connection whose frame, once begun, is not whole this long after is closed.
        public var frameTimeout: TimeAmount = .seconds(30)
        /// With TLS: a connection whose handshake is not done this long after it opened is closed.
        public var handshakeTimeout: TimeAmount = .seconds(10)
        public init() {}
    }

    public let localAddress: Endpoint
    public let counters: ServerCounters
    private let channel: Channel
    private let work: AsyncStream<@Sendable () async -> Void>
    private let workQueue: AsyncStream<@Sendable () async -> Void>.Continuation
    private let logger: Logger

    public static func bind(
        _ endpoint: Endpoint, handler: any RequestHandler, configuration: Configuration = .init(),
        logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        security: TransportSecurity = .process
    ) async throws -> RPCServer {
        let counters = ServerCounters()
        let tls = security.server
        let (work, workQueue) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.recvAllocator, value: FrameReader.receiveAllocator)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let open = counters.connections.add(1, ordering: .relaxed).newValue
                    channel.closeFuture.whenComplete { _ in counters.connections.subtract(1, ordering: .relaxed) }
                    guard open <= configuration.maxConnections else {
                        logger.warning("refusing connection: \(configuration.maxConnections) already open")
                        channel.close(promise: nil)
                        return
                    }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    if let tls {
                        try TransportSecurity.addServerHandlers(
                            tls, handshakeTimeout: configuration.handshakeTimeout, to: sync)
                    }
                    let target = tls == nil ? try ReceiveTarget.install(on: channel) : nil
                    try sync.addHandler(
                        FrameReader(
                            maxFrameSize: configuration.maxFrameSize, target: target,
                            frameTimeout: configuration.frameTimeout))
                    try sync.addHandler(
                        ServerConnectionHandler(
                            handler: handler, counters: counters, workQueue: workQueue, logger: logger))
                }
            }
            .bind(host: endpoint.host, port: endpoint.port)
            .get()
        guard let port = channel.localAddress?.port else {
            throw PocketError(.internalError, "bound socket has no port")
        }
        return RPCServer(
            localAddress: Endpoint(host: endpoint.host, port: port), counters: counters, channel: channel,
            work: work, workQueue: workQueue, logger: logger)
    }

    private init(
        localAddress: Endpoint, counters: ServerCounters, channel: Channel,
        work: AsyncStream<@Sendable () async -> Void>, workQueue: AsyncStream<@Sendable () async -> Void>.Continuation,
        logger: Logger
    ) {
        self.localAddress = localAddress
        self.counters = counters
        self.channel = channel
        self.work = work
        self.workQueue = workQueue
        self.logger = logger
    }

    public func run() async throws {
        let channel = self.channel
        let workQueue = self.workQueue
        await withDiscardingTaskGroup { group in
            group.addTask {
                await withGracefulShutdownHandler {
                    try? await channel.closeFuture.get()
                } onGracefulShutdown: {
                    channel.close(promise: nil)
                }
                workQueue.finish()
            }
            for await item in work {
                group.addTask { await item() }
            }
        }
        logger.debug("server on \(localAddress) stopped")
    }
}

/// One connection's requests: decoded frames in, replies out, flushed once per read burst.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = FrameEvent
    typealias OutboundOut = ByteBuffer

    private let handler: any RequestHandler
    private let counters: ServerCounters
    private let workQueue: AsyncStream<@Sendable () async -> Void>.Continuation
    private let logger: Logger
    private var needsFlush = false

    init(
        handler: any RequestHandler, counters: ServerCounters,
        workQueue: AsyncStream<@Sendable () async -> Void>.Continuation, logger: Logger
    ) {
        self.handler = handler
        self.counters = counters
        self.workQueue = workQueue
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .frame(let frame):
            counters.received(frame.payload.readableBytes + FrameHeader.size)
            guard !frame.header.isResponse else {
                send(
                    .error(.malformed("a response frame sent to a server")), for: frame.header, context: context)
                return
            }
            send(handler.handle(frame), for: frame.header, context: context)
        case .invalid(let requestID, let opcode, let error):
            logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
            write(WireWriter.errorFrame(error, opcode: opcode, requestID: requestID), context: context)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("connection error: \(error)")
        context.close(promise: nil)
    }

    private func send(_ reply: Reply, for request: FrameHeader, context: ChannelHandlerContext) {
        switch reply {
        case .message(let message):
            let header = FrameHeader(opcode: request.opcode, isResponse: true, requestID: request.requestID)
            write(WireWriter.frame(message, header: header, allocator: context.channel.allocator), context: context)
        case .error(let error):
            write(
                WireWriter.errorFrame(
                    error, opcode: request.opcode, requestID: request.requestID, allocator: context.channel.allocator),
                context: context)
        case .later(let work):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let queued = workQueue.yield {
                let reply = await work()
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    guard context.channel.isActive else { return }
                    handler.send(reply, for: request, context: context)
                    handler.needsFlush = false
                    context.flush()
                }
            }
            if case .terminated = queued {
                send(.error(PocketError(.unavailable, "server is shutting down")), for: request, context: context)
            }
        }
    }

    private func write(_ parts: [ByteBuffer], context: ChannelHandlerContext) {
        for part in parts {
            counters.sent(part.readableBytes)
            context.write(wrapOutboundOut(part), promise: nil)
        }
        needsFlush = true
    }
}
