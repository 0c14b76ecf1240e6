import Glibc
import PocketProtocol

/// The one place where Pocket's errors become errno values for the kernel.
public enum Errno {
    public static func from(_ error: any Error) -> Int32 {
        guard let error = error as? PocketError else { return EIO }
        return from(error.code)
    }

    public static func from(_ code: PocketError.Code) -> Int32 {
        switch code {
        case .notFound, .unknownJob: ENOENT
        case .alreadyExists: EEXIST
        case .unauthorized: EACCES
        case .noSpace: ENOSPC
        case .notEmpty: ENOTEMPTY
        case .notDirectory: ENOTDIR
        case .isDirectory: EISDIR
        case .invalidArgument, .malformed: EINVAL
        case .crossJob: EXDEV
        case .busy: EBUSY
        case .frameTooLarge: EFBIG
        case .io, .unavailable, .timedOut, .internalError, .unknownServer, .unknownOpcode, .unsupportedVersion: EIO
        }
    }
}

/// An operation's failure as the errno to reply with.
public struct FuseError: Error {
    public var errno: Int32
    public init(_ errno: Int32) { self.errno = errno }
}
