/// The one error type that crosses the wire. Every failure a peer can see is a `Code` plus a message;
/// the code travels as the frame's status byte, the message as the error frame's payload.
public struct PocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: UInt8, Sendable, CaseIterable {
        case malformed = 1
        case unsupportedVersion = 2
        case unknownOpcode = 3
        case frameTooLarge = 4
        case notFound = 5
        case alreadyExists = 6
        case unauthorized = 7
        case noSpace = 8
        case notEmpty = 9
        case notDirectory = 10
        case isDirectory = 11
        case unknownJob = 12
        case unknownServer = 13
        case unavailable = 14
        case invalidArgument = 15
        case timedOut = 16
        case internalError = 17
        case crossJob = 18
        case io = 19
        case busy = 20

        /// The code a status byte names; a status this build does not know reads as `internalError`.
        public init(status: UInt8) {
            self = Code(rawValue: status) ?? .internalError
        }

        public var name: String {
            switch self {
            case .malformed: "malformed request"
            case .unsupportedVersion: "unsupported protocol version"
            case .unknownOpcode: "unknown opcode"
            case .frameTooLarge: "frame too large"
            case .notFound: "not found"
            case .alreadyExists: "already exists"
            case .unauthorized: "unauthorized"
            case .noSpace: "no space"
            case .notEmpty: "directory not empty"
            case .notDirectory: "not a directory"
            case .isDirectory: "is a directory"
            case .unknownJob: "unknown job"
            case .unknownServer: "unknown server"
            case .unavailable: "unavailable"
            case .invalidArgument: "invalid argument"
            case .timedOut: "timed out"
            case .internalError: "internal error"
            case .crossJob: "cross-job operation"
            case .io: "I/O error"
            case .busy: "busy"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public var description: String {
        message.isEmpty ? code.name : "\(code.name): \(message)"
    }

    public static func malformed(_ message: String) -> PocketError { PocketError(.malformed, message) }
}
