import NIOCore
import NIOSSL
import NIOTLS
import PocketProtocol

extension TransportSecurity {
    /// A TLS server's handlers, in front of the frame handlers: plain Pocket clients are told to use
    /// TLS, and a handshake not done within `handshakeTimeout` closes the connection.
    static func addServerHandlers(
        _ context: NIOSSLContext, handshakeTimeout: TimeAmount, to pipeline: ChannelPipeline.SynchronousOperations
    ) throws {
        try pipeline.addHandler(PlaintextRefusalHandler())
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
        try pipeline.addHandler(TLSHandshakeHandler(timeout: handshakeTimeout, completion: nil))
    }

    /// A TLS client's handlers: SNI and hostname verification for a name, IP SAN verification for
    /// an address; `completion` is told how the handshake ended.
    static func addClientHandlers(
        _ context: NIOSSLContext, endpoint: Endpoint, handshakeTimeout: TimeAmount,
        completion: EventLoopPromise<Void>, to pipeline: ChannelPipeline.SynchronousOperations
    ) throws {
        // SNI cannot carry an address; without a name NIOSSL checks the peer's IP against the
        // certificate's IP SANs instead.
        let isAddress = (try? SocketAddress(ipAddress: endpoint.host, port: 0)) != nil
        try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : endpoint.host))
        try pipeline.addHandler(TLSHandshakeHandler(timeout: handshakeTimeout, completion: completion))
    }

    /// What went wrong in a client's handshake with `endpoint`, with the likely cause.
    static func handshakeFailure(_ error: any Error, endpoint: Endpoint) -> PocketError {
        let prefix = "TLS handshake with \(endpoint) failed"
        if let error = error as? PocketError {
            return PocketError(error.code, "\(prefix): \(error.message); is it serving TLS?")
        }
        let reason = "\(error)"
        let hint: String
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            hint = "its certificate is not for \(endpoint.host)"
        } else if reason.contains("CERTIFICATE_VERIFY_FAILED") {
            // BoringSSL's reason name; the error carries no structured verification result.
            hint = "its certificate is not signed by a CA this client trusts (--tls-ca), or is not valid now"
        } else {
            hint = "is it serving TLS?"
        }
        return PocketError(.unavailable, "\(prefix): \(hint) (\(reason))")
    }
}

/// Before a TLS server's handshake: a connection whose first byte is not a TLS handshake record is
/// not TLS. If it starts like a Pocket frame it gets a plain error reply saying so (its request id
/// echoed, so the caller sees it as its call's error); either way it is then closed. A TLS record
/// passes on untouched and this handler leaves the pipeline.
final class PlaintextRefusalHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A TLS record of type handshake (RFC 8446 §5.1); a Pocket frame starts with a length < 2^24.
    private static let handshakeRecord: UInt8 = 0x16
    private var received: ByteBuffer?
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var buffer = unwrapInboundIn(data)
        if var earlier = received {
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        if first == Self.handshakeRecord {
            received = nil
            context.fireChannelRead(wrapInboundOut(buffer))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        guard buffer.readableBytes >= FrameHeader.size else {
            received = buffer
            return
        }
        refused = true
        received = nil
        let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)
        guard version == FrameHeader.version,
            let opcode = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self),
            let requestID = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt64.self)
        else {
            context.close(promise: nil)
            return
        }
        let error = PocketError(
            .unauthorized,
            "this server accepts only TLS connections "
                + "(pocket: --tls-ca or POCKET_TLS_CA)")
        for part in WireWriter.errorFrame(
            error, opcode: Opcode(rawValue: opcode), requestID: requestID, allocator: context.channel.allocator)
        {
            context.write(wrapOutboundOut(part), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// Bounds a TLS handshake in time and reports its outcome: on `handshakeCompleted` it completes
/// `completion` and leaves the pipeline; an error, a closed connection or `timeout` fails it (and
/// the timeout closes the connection). On a server this stops a client that never finishes its
/// handshake from holding a connection; on a client it makes a server that does not speak TLS a
/// prompt error instead of a call that waits for its timeout.
final class TLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let completion: EventLoopPromise<Void>?
    private var deadline: Scheduled<Void>?
    private var done = false

    init(timeout: TimeAmount, completion: EventLoopPromise<Void>?) {
        self.timeout = timeout
        self.completion = completion
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(PocketError(.unavailable, "the connection closed during the handshake"))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            finish(nil)
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(PocketError(.unavailable, "the connection closed during the handshake"))
        context.fireChannelInactive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard deadline == nil, !done else { return }
        let timeout = self.timeout
        let channel = context.channel
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            self?.finish(PocketError(.timedOut, "no handshake within \(timeout.seconds) s"))
            channel.close(promise: nil)
        }
    }

    private func finish(_ error: (any Error)?) {
        guard !done else { return }
        done = true
        deadline?.cancel()
        deadline = nil
        if let error {
            completion?.fail(error)
        } else {
            completion?.succeed()
        }
    }
}
