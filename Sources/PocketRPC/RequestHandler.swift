import NIOCore
import PocketProtocol

/// What a server does with a request.
public enum Reply: Sendable {
    case message(any WireMessage)
    case error(PocketError)
    /// Work that must await something (another server, say). It runs in the server's task group and
    /// its reply is sent when it finishes; other requests on the connection go on meanwhile.
    case later(@Sendable () async -> Reply)

    public static let ok = Reply.message(Empty())

    /// Runs `body`, turning a thrown error into an error reply.
    public static func from(_ body: () throws -> any WireMessage) -> Reply {
        do {
            return .message(try body())
        } catch {
            return .error(PocketError(wrapping: error))
        }
    }

    public static func asyncFrom(_ body: @escaping @Sendable () async throws -> any WireMessage) -> Reply {
        .later {
            do {
                return .message(try await body())
            } catch {
                return .error(PocketError(wrapping: error))
            }
        }
    }
}

/// A server's request logic. `handle` runs on the connection's event loop and must not block:
/// quick work replies at once, anything that waits returns `.later`.
public protocol RequestHandler: Sendable {
    func handle(_ request: Frame) -> Reply
}

extension Frame {
    /// Decodes the request as `R` and replies with `body`'s result, or with the error it throws.
    public func serve<R: WireRequest>(_: R.Type, _ body: (R) throws -> R.Response) -> Reply {
        Reply.from { try body(try decode(R.self)) }
    }

    /// Like `serve`, for work that must await.
    public func serveAsync<R: WireRequest>(
        _: R.Type, _ body: @escaping @Sendable (R) async throws -> R.Response
    ) -> Reply {
        do {
            let request = try decode(R.self)
            return Reply.asyncFrom { try await body(request) }
        } catch {
            return .error(PocketError(wrapping: error))
        }
    }
}

extension PocketError {
    /// Any error as a PocketError; foreign errors become `internalError` with their description.
    public init(wrapping error: any Error) {
        if let error = error as? PocketError {
            self = error
        } else if error is ChannelError || error is IOError {
            self = PocketError(.unavailable, "\(error)")
        } else {
            self = PocketError(.internalError, "\(error)")
        }
    }
}
