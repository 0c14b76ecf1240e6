import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// RECORDED-API FAKE — not a Kubernetes cluster. No cluster can run on the machines that build and
/// test Pocket, so this stands in for the API server: a real HTTP/1.1 server on 127.0.0.1 (a port
/// the kernel picks; plain HTTP, or TLS with the test CA in Fixtures/tls) that records every request
/// and answers from the JSON responses under Fixtures/. Those were written by hand in the exact
/// shape kube-apiserver's v1 API returns (Pod, PodList, Status), not captured from a live cluster.
/// It checks nothing a real API server would (no authentication, no validation, no scheduling):
/// tests assert on the requests it records and on what the provisioner makes of its answers.
final class FakeKubernetesAPI: Sendable {
    struct Request: Sendable {
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var body: Data

        var path: String { String(uri.prefix { $0 != "?" }) }
        var query: String? { uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } }
        var json: JSON { JSON(try? JSONSerialization.jsonObject(with: body)) }
    }

    enum Answer: Sendable {
        case reply(status: Int, body: Data)
        /// Read the request and never answer (an API server that hangs).
        case silence
    }

    typealias Answerer = @Sendable (Request) -> Answer

    /// Every request received, in order, and how to answer the next; shared with the connections.
    final class Log: Sendable {
        let requests = Mutex<[Request]>([])
        let answer = Mutex<Answerer>(FakeKubernetesAPI.replay())
    }

    let url: URL
    private let channel: any Channel
    private let log: Log

    var requests: [Request] { log.requests.withLock { $0 } }

    private init(url: URL, channel: any Channel, log: Log) {
        self.url = url
        self.channel = channel
        self.log = log
    }

    /// Answers requests from now on with `answer` instead of `replay()`.
    func answer(with answer: @escaping Answerer) {
        log.answer.withLock { $0 = answer }
    }

    /// Starts a fake that answers with `replay()`; `tls` serves https.
    static func start(tls: NIOSSLContext? = nil) async throws -> FakeKubernetesAPI {
        let log = Log()
        let fake = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let scheme = tls == nil ? "http" : "https"
        let url = URL(string: "\(scheme)://127.0.0.1:\(fake.localAddress!.port!)")!
        return FakeKubernetesAPI(url: url, channel: fake, log: log)
    }

    func close() async {
        try? await channel.close()
    }

    /// Replays the recorded responses the way the API server fills them in: a created pod gets
    /// the request's generateName, labels and namespace, and a name from them plus a counter
    /// (or, with `renamePods` false, the recorded name); list and delete answer as recorded.
    static func replay(renamePods: Bool = true) -> Answerer {
        let counter = Counter()
        return { request in
            switch request.method {
            case .POST:
                guard renamePods else { return .recorded("pod-create-201", status: 201) }
                let sent = request.json
                let number = counter.next()
                let generateName = sent["metadata"]["generateName"].string ?? "pod-"
                return .recorded("pod-create-201", status: 201) { pod in
                    var metadata = pod["metadata"] as? [String: Any] ?? [:]
                    metadata["name"] = generateName + String(format: "%05d", number)
                    metadata["generateName"] = generateName
                    metadata["labels"] = sent["metadata"]["labels"].value
                    metadata["namespace"] = String(request.path.split(separator: "/")[3])
                    pod["metadata"] = metadata
                }
            case .GET:
                return .recorded("pod-list-200", status: 200)
            case .DELETE:
                return .recorded("pod-delete-200", status: 200) { pod in
                    var metadata = pod["metadata"] as? [String: Any] ?? [:]
                    metadata["name"] = String(request.path.split(separator: "/").last ?? "")
                    pod["metadata"] = metadata
                }
            default:
                return .reply(status: 405, body: Data())
            }
        }
    }
}

extension FakeKubernetesAPI.Answer {
    /// A fixture from Fixtures/, optionally edited as a JSON object first.
    static func recorded(_ name: String, status: Int, edit: ((inout [String: Any]) -> Void)? = nil) -> Self {
        var body = Fixture.data(name + ".json")
        if let edit, var object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
            edit(&object)
            body = try! JSONSerialization.data(withJSONObject: object)
        }
        return .reply(status: status, body: body)
    }
}

/// Numbers pod names the way generateName's random suffix would, but predictably.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    func next() -> Int { value.add(1, ordering: .relaxed).newValue }
}

enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func data(_ name: String) -> Data {
        try! Data(contentsOf: directory.appendingPathComponent(name))
    }
}

/// Collects one request, records it, answers it and closes the connection.
private final class Handler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let log: FakeKubernetesAPI.Log
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(log: FakeKubernetesAPI.Log) {
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            let request = FakeKubernetesAPI.Request(
                method: head.method, uri: head.uri, headers: head.headers, body: Data(body.readableBytesView))
            log.requests.withLock { $0.append(request) }
            let answer = log.answer.withLock { $0 }
            guard case .reply(let status, let data) = answer(request) else { return }
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(data.count)")])
            let response = HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// Read-only access into decoded JSON: `json["spec"]["containers"][0]["args"].strings`.
struct JSON {
    let value: Any?

    init(_ value: Any?) { self.value = value }

    subscript(key: String) -> JSON { JSON((value as? [String: Any])?[key]) }
    subscript(index: Int) -> JSON {
        guard let array = value as? [Any], array.indices.contains(index) else { return JSON(nil) }
        return JSON(array[index])
    }

    var string: String? { value as? String }
    var strings: [String]? { value as? [String] }
    var int: Int? { value as? Int }
    var bool: Bool? { value as? Bool }
    var count: Int { (value as? [Any])?.count ?? 0 }
    var isNull: Bool { value == nil || value is NSNull }
}
