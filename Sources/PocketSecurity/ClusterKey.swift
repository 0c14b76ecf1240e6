import Crypto
import Foundation
import PocketProtocol

/// The secret every server of a cluster shares: metadata servers sign block capabilities with it,
/// the controller signs what it asks of metadata servers, storage and metadata servers check.
/// It lives in a file (32 random bytes, hex) readable by the servers alone; it never travels on the
/// wire and is never logged.
public struct ClusterKey: @unchecked Sendable {  // SymmetricKey is immutable once made.
    private let bytes: [UInt8]
    /// Made once: every capability checked on a storage server's request path uses it.
    let key: SymmetricKey

    public init(bytes: [UInt8]) throws(PocketError) {
        guard bytes.count >= 16 else {
            throw PocketError(.invalidArgument, "a cluster key needs at least 16 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
        key = SymmetricKey(data: bytes)
    }

    /// A new random key.
    public static func random() -> ClusterKey {
        try! ClusterKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    /// The file the daemons use unless told: `$POCKET_CLUSTER_KEY`, else `~/.pocket/cluster.key`.
    public static var defaultPath: String {
        if let path = ProcessInfo.processInfo.environment["POCKET_CLUSTER_KEY"], !path.isEmpty { return path }
        let home =
            ProcessInfo.processInfo.environment["POCKET_HOME"]
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".pocket")
        return (home as NSString).appendingPathComponent("cluster.key")
    }

    /// Reads the key at `path`.
    public static func load(path: String) throws(PocketError) -> ClusterKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PocketError(.invalidArgument, "cannot read the cluster key file \(path)")
        }
        guard let bytes = hexBytes(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw PocketError(.invalidArgument, "the cluster key file \(path) does not hold a hex key")
        }
        return try ClusterKey(bytes: bytes)
    }

    /// Reads the key at `path`, first writing a new random one there (mode 0600) when there is
    /// none; safe when several daemons start at once, since only one create succeeds.
    public static func loadOrCreate(path: String) throws(PocketError) -> ClusterKey {
        if !FileManager.default.fileExists(atPath: path) {
            let directory = (path as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let hex = random().bytes.map { String(format: "%02x", $0) }.joined() + "\n"
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            if descriptor >= 0 {
                let written = hex.utf8CString.withUnsafeBufferPointer {
                    write(descriptor, $0.baseAddress, $0.count - 1)
                }
                close(descriptor)
                guard written == hex.utf8.count else {
                    unlink(path)
                    throw PocketError(.io, "cannot write the cluster key file \(path)")
                }
            }
        }
        return try load(path: path)
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
