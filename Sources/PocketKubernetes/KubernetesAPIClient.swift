import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PocketProtocol

/// A small HTTP/1.1 JSON client for the Kubernetes API: one connection per request (the provisioner
/// makes a few a minute), bearer token read from its file each time, every request bounded by a
/// timeout. Failures are `PocketError`s naming the request and, when the API answered, its status
/// and message.
struct KubernetesAPIClient: Sendable {
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: ByteBuffer
    }

    /// Larger responses are refused rather than buffered (a pod list filtered to Pocket's pods is small).
    static let maxResponseBytes = 16 << 20

    let server: URL
    let host: String
    let port: Int
    /// `HOST[:PORT]` as the Host header wants it (an IPv6 address in brackets).
    let authority: String
    let tokenPath: String
    let timeout: Duration
    let group: any EventLoopGroup
    /// nil for plain HTTP.
    let tls: NIOSSLContext?

    init(server: URL, tokenPath: String, caPath: String, timeout: Duration, group: any EventLoopGroup) throws {
        guard let scheme = server.scheme?.lowercased(), scheme == "https" || scheme == "http",
            let host = server.host, !host.isEmpty
        else {
            throw PocketError(.invalidArgument, "Kubernetes API address must be http(s)://HOST[:PORT], not \(server)")
        }
        self.server = server
        // URL keeps an IPv6 host's brackets; sockets and certificates want it bare.
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = server.port ?? (scheme == "https" ? 443 : 80)
        self.authority = server.port == nil ? host : "\(host):\(port)"
        self.tokenPath = tokenPath
        self.timeout = timeout
        self.group = group
        if scheme == "https" {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(caPath)
            do {
                tls = try NIOSSLContext(configuration: configuration)
            } catch {
                throw PocketError(.io, "cannot load the Kubernetes API's CA from \(caPath): \(error)")
            }
        } else {
            tls = nil
        }
    }

    /// Sends a request and decodes a 2xx response's body as `T`.
    func send<T: Decodable>(
        _ method: HTTPMethod, _ path: String, json: (any Encodable)? = nil, as type: T.Type
    ) async throws -> T {
        let body = try json.map { try JSONEncoder().encode($0) }
        let response = try await send(method, path, body: body)
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
        } catch {
            throw PocketError(.io, "Kubernetes API \(method) \(path): unreadable response: \(error)")
        }
    }

    /// Sends a request and returns a 2xx response; any other status throws with the API's message.
    func send(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Response {
        let token = try readToken()
        let response = try await withTimeout(method, path) {
            try await exchange(method, path, token: token, body: body)
        }
        guard (200..<300).contains(response.status.code) else {
            throw Self.apiError(method, path, response)
        }
        return response
    }

    private func readToken() throws -> String {
        guard let data = FileManager.default.contents(atPath: tokenPath) else {
            throw PocketError(.unauthorized, "cannot read the service account token at \(tokenPath)")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func withTimeout(
        _ method: HTTPMethod, _ path: String, _ body: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        try await withThrowingTaskGroup(of: Response.self) { group in
            group.addTask(operation: body)
            group.addTask {
                try await Task.sleep(for: timeout)
                throw PocketError(
                    .timedOut, "Kubernetes API at \(server) did not answer \(method) \(path) in \(timeout)")
            }
            // The loser is cancelled: a pending read ends and its channel closes.
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func exchange(_ method: HTTPMethod, _ path: String, token: String, body: Data?) async throws -> Response {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await connect()
        } catch let error as CancellationError {
            throw error
        } catch {
            throw PocketError(.unavailable, "Kubernetes API at \(server) unreachable: \(error)")
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: authority)
        head.headers.add(name: "Authorization", value: "Bearer \(token)")
        head.headers.add(name: "Accept", value: "application/json")
        head.headers.add(name: "User-Agent", value: "pocket-controller")
        head.headers.add(name: "Connection", value: "close")
        if let body {
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: "\(body.count)")
        }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                // One write: a server may answer and close as soon as it has the head of a GET.
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
                return try await Self.readResponse(inbound)
            }
        } catch let error as PocketError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw PocketError(.io, "Kubernetes API at \(server) failed \(method) \(path): \(error)")
        }
    }

    private func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let tls = self.tls
        // SNI takes names only; for an IP address NIOSSL checks the certificate against the peer's IP.
        let serverName = host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
        return try await ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(timeout))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: serverName)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
                }
            }
    }

    private static func readResponse(
        _ inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>
    ) async throws
        -> Response
    {
        var status: HTTPResponseStatus?
        var body = ByteBuffer()
        for try await part in inbound {
            switch part {
            case .head(let head):
                status = head.status
            case .body(var chunk):
                guard body.readableBytes + chunk.readableBytes <= maxResponseBytes else {
                    throw PocketError(.io, "Kubernetes API response larger than \(maxResponseBytes) bytes")
                }
                body.writeBuffer(&chunk)
            case .end:
                guard let status else { break }
                return Response(status: status, body: body)
            }
        }
        throw PocketError(.io, "Kubernetes API closed the connection before the response ended")
    }

    /// The error for a non-2xx answer: the code from the HTTP status, the message from the `Status`
    /// object the API sends (or the raw body when it is not one).
    static func apiError(_ method: HTTPMethod, _ path: String, _ response: Response) -> PocketError {
        let code: PocketError.Code =
            switch response.status.code {
            case 401, 403: .unauthorized
            case 404: .notFound
            case 409: .alreadyExists
            case 400, 422: .invalidArgument
            case 408, 504: .timedOut
            case 429, 500..<600: .unavailable
            default: .io
            }
        let raw = Data(response.body.readableBytesView)
        let message =
            (try? JSONDecoder().decode(APIStatus.self, from: raw))?.message
            ?? String(decoding: raw.prefix(512), as: UTF8.self)
        let status = "\(response.status.code) \(response.status.reasonPhrase)"
        return PocketError(code, "Kubernetes API \(method) \(path): \(status): \(message)")
    }
}
