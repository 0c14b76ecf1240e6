import Foundation
import PocketProtocol
import PocketRPC

/// Keeps job tokens where only their owner can read them (`~/.pocket/tokens/HOST_PORT/NAME`,
/// directories 0700, files 0600), so later commands of the same user find a job's token by name.
/// `POCKET_HOME` moves the store.
public struct TokenStore: Sendable {
    public let directory: URL

    public init(controller: Endpoint, home: String? = ProcessInfo.processInfo.environment["POCKET_HOME"]) {
        let base =
            home.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".pocket")
        let cluster = "\(controller.host)_\(controller.port)".replacingOccurrences(of: "/", with: "_")
        directory = base.appendingPathComponent("tokens").appendingPathComponent(cluster)
    }

    private func file(_ job: String) -> URL {
        directory.appendingPathComponent(job)
    }

    public func save(job: String, token: String) throws {
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = file(job).path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PocketError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array((token + "\n").utf8)
        guard Foundation.write(fd, bytes, bytes.count) == bytes.count else {
            throw PocketError(.io, "cannot write \(path)")
        }
    }

    public func load(job: String) -> String? {
        guard let text = try? String(contentsOf: file(job), encoding: .utf8) else { return nil }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }

    public func remove(job: String) {
        try? FileManager.default.removeItem(at: file(job))
    }
}
