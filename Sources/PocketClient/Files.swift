import Foundation
import NIOCore
import PocketProtocol

extension PocketJob {
    /// Stores a file (or standard input, for "-") at `key`, streaming it in 1 MiB reads.
    public func put(_ key: String, contentsOfFile path: String, persist: Bool = false) async throws {
        let input = try FileStream(reading: path)
        defer { input.close() }
        try await write(key, persist: persist) { writer in
            while let chunk = try input.read(1 << 20) { try await writer.write(chunk) }
        }
    }

    /// Writes the object at `key` to a file (or standard output, for "-"), block by block.
    public func get(_ key: String, toFile path: String, deleteAfterRead: Bool = false) async throws {
        let output = try FileStream(writing: path)
        defer { output.close() }
        try await read(key, deleteAfterRead: deleteAfterRead) { chunk in try output.write(chunk) }
    }
}

/// A file or standard stream ("-"), read or written in large chunks.
final class FileStream {
    private let fd: Int32
    private let owned: Bool
    private let path: String

    init(reading path: String) throws {
        self.path = path
        if path == "-" {
            (fd, owned) = (STDIN_FILENO, false)
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            owned = true
            guard fd >= 0 else { throw Self.failure("cannot open", path) }
        }
    }

    init(writing path: String) throws {
        self.path = path
        if path == "-" {
            (fd, owned) = (STDOUT_FILENO, false)
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            owned = true
            guard fd >= 0 else { throw Self.failure("cannot create", path) }
        }
    }

    /// Up to `count` bytes, or nil at the end.
    func read(_ count: Int) throws -> ByteBuffer? {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        while buffer.readableBytes < count {
            let wanted = count - buffer.readableBytes
            let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) {
                Foundation.read(fd, $0.baseAddress, wanted)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw Self.failure("cannot read", path)
            }
            if got == 0 { break }
        }
        return buffer.readableBytes == 0 ? nil : buffer
    }

    func write(_ data: ByteBuffer) throws {
        var data = data
        while data.readableBytes > 0 {
            let wrote = data.withUnsafeReadableBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if wrote < 0 {
                if errno == EINTR { continue }
                throw Self.failure("cannot write", path)
            }
            data.moveReaderIndex(forwardBy: wrote)
        }
    }

    func close() {
        if owned { _ = Foundation.close(fd) }
    }

    private static func failure(_ what: String, _ path: String) -> PocketError {
        PocketError(.io, "\(what) \(path): \(String(cString: strerror(errno)))")
    }
}
