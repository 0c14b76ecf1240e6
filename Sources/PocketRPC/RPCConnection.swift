import NIOCore
import NIOPosix
import PocketProtocol

/// A client connection to one server. Requests are pipelined: any number may be in flight, each
/// matched to its response by request id. Writes issued in the same event-loop tick share one flush.
public final class RPCConnection: Sendable {
    public let endpoint: Endpoint
    private let channel: Channel
    private let handler: NIOLoopBound<ClientConnectionHandler>
    private let defaultTimeout: TimeAmount

    public static let defaultTimeout: TimeAmount = .seconds(10)

    /// How long opening a connection may take: the TCP connect, then the TLS handshake if any.
    public static let connectTimeout: TimeAmount = .seconds(3)

    /// Opens a connection; with a client side in `security`, over TLS, returning once the server's
    /// certificate has been verified.
    public static func connect(
        to endpoint: Endpoint, timeout: TimeAmount = RPCConnection.defaultTimeout,
        maxFrameSize: Int = FrameDecoder.defaultMaxFrameSize,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        security: TransportSecurity = .process
    ) async throws -> RPCConnection {
        let tls = security.client
        let handshake = tls.map { _ in group.any().makePromise(of: Void.self) }
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.recvAllocator, value: FrameReader.receiveAllocator)
                .connectTimeout(connectTimeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls, let handshake {
                            try TransportSecurity.addClientHandlers(
                                tls, endpoint: endpoint, handshakeTimeout: connectTimeout, completion: handshake,
                                to: sync)
                        }
                        let target = tls == nil ? try ReceiveTarget.install(on: channel) : nil
                        try sync.addHandler(FrameReader(maxFrameSize: maxFrameSize, target: target))
                        try sync.addHandler(ClientConnectionHandler(endpoint: endpoint))
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port)
                .get()
        } catch {
            handshake?.fail(error)
            throw PocketError(.unavailable, "cannot connect to \(endpoint): \(error)")
        }
        do {
            if let handshake { try await handshake.futureResult.get() }
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(
                    try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self),
                    eventLoop: channel.eventLoop)
            }.get()
            return RPCConnection(endpoint: endpoint, channel: channel, handler: handler, defaultTimeout: timeout)
        } catch {
            channel.close(promise: nil)
            if handshake != nil { throw TransportSecurity.handshakeFailure(error, endpoint: endpoint) }
            throw PocketError(.unavailable, "cannot connect to \(endpoint): \(error)")
        }
    }

    private init(
        endpoint: Endpoint, channel: Channel, handler: NIOLoopBound<ClientConnectionHandler>,
        defaultTimeout: TimeAmount
    ) {
        self.endpoint = endpoint
        self.channel = channel
        self.handler = handler
        self.defaultTimeout = defaultTimeout
    }

    public var isActive: Bool { channel.isActive }
    /// The event loop the connection's channel runs on.
    public var eventLoop: any EventLoop { channel.eventLoop }

    /// Sends `request` and waits for its response; a server error is thrown as its PocketError.
    public func call<R: WireRequest>(_ request: R, timeout: TimeAmount? = nil) async throws -> R.Response {
        let frame = try await send(
            WireWriter.frame(
                request, header: FrameHeader(opcode: R.opcode, requestID: 0), allocator: channel.allocator),
            timeout: timeout ?? defaultTimeout)
        if let error = frame.error { throw error }
        return try frame.decode(R.Response.self)
    }

    /// Sends an encoded request frame (its request id is filled in here) and returns the response frame.
    public func send(_ parts: [ByteBuffer], timeout: TimeAmount) async throws -> Frame {
        let promise = channel.eventLoop.makePromise(of: Frame.self)
        let handler = self.handler
        if channel.eventLoop.inEventLoop {
            handler.value.enqueue(parts, promise: promise, timeout: timeout)
        } else {
            channel.eventLoop.execute { handler.value.enqueue(parts, promise: promise, timeout: timeout) }
        }
        return try await promise.futureResult.get()
    }

    public func close() async {
        try? await channel.close()
    }
}

final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = FrameEvent
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<Frame>
        var deadline: NIODeadline
        var timeout: TimeAmount
    }

    private let endpoint: Endpoint
    private var context: ChannelHandlerContext?
    private var pending: [UInt64: Pending] = [:]
    /// One timer for the connection, set for the earliest deadline of the requests in flight: a
    /// timer per request (scheduled, then cancelled at the answer) cost more than the request's own
    /// handling at 100,000 requests a second.
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var nextRequestID: UInt64 = 1
    private var flushScheduled = false
    private var closedError: PocketError?

    init(endpoint: Endpoint) {
        self.endpoint = endpoint
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func enqueue(_ parts: [ByteBuffer], promise: EventLoopPromise<Frame>, timeout: TimeAmount) {
        guard let context, closedError == nil, context.channel.isActive else {
            promise.fail(closedError ?? PocketError(.unavailable, "connection to \(endpoint) is closed"))
            return
        }
        let id = nextRequestID
        nextRequestID &+= 1
        // The loop's clock, not the wall's: the same on a real loop, virtual on a test's.
        let deadline = context.eventLoop.now + timeout
        pending[id] = Pending(promise: promise, deadline: deadline, timeout: timeout)
        armTimer(for: deadline, context)

        var parts = parts
        parts[0].setInteger(id, at: parts[0].readerIndex + 8)
        for part in parts {
            context.write(wrapOutboundOut(part), promise: nil)
        }
        if !flushScheduled {
            flushScheduled = true
            // Runs after the writes already queued on this loop: one flush for all of them.
            context.eventLoop.assumeIsolated().execute { [weak self] in
                guard let self, let context = self.context else { return }
                self.flushScheduled = false
                context.flush()
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .frame(let frame):
            guard let entry = pending.removeValue(forKey: frame.header.requestID) else { return }
            entry.promise.succeed(frame)
        case .invalid(_, _, let error):
            failAll(PocketError(.malformed, "bad frame from \(endpoint): \(error)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(PocketError(.unavailable, "connection to \(endpoint) lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(PocketError(.unavailable, "connection to \(endpoint) failed: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: PocketError) {
        if closedError == nil { closedError = error }
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        let entries = pending
        pending.removeAll()
        for entry in entries.values { entry.promise.fail(error) }
    }

    /// Makes sure the timer fires by `deadline`. Requests mostly share a timeout, so a later one's
    /// deadline is later and leaves the timer alone.
    private func armTimer(for deadline: NIODeadline, _ context: ChannelHandlerContext) {
        if let current = timerDeadline, current <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.expire()
        }
    }

    /// Fails the requests past their deadline and sets the timer for the next one.
    private func expire() {
        timer = nil
        timerDeadline = nil
        guard let context else { return }
        let now = context.eventLoop.now
        let expired = pending.filter { $0.value.deadline <= now }
        for (id, entry) in expired {
            pending.removeValue(forKey: id)
            entry.promise.fail(PocketError(.timedOut, "no answer from \(endpoint) within \(entry.timeout.seconds) s"))
        }
        if let next = pending.values.map(\.deadline).min() { armTimer(for: next, context) }
    }
}

extension TimeAmount {
    var seconds: Double { Double(nanoseconds) / 1e9 }
}
