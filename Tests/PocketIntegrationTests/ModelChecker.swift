import Foundation
import Glibc
import PocketProtocol
import PocketTestSupport

/// An fsx-style check: random writes, truncates, reads, reopens and renames on a few files through
/// the mount, each compared with an in-memory model of what the files must hold.
struct ModelChecker {
    struct Mismatch: Error, CustomStringConvertible {
        var description: String
    }

    let directory: String
    var generator: SplitMix64
    var model: [String: [UInt8]] = [:]
    var open: [String: Int32] = [:]
    let names = ["alpha", "beta", "gamma"]
    let maxSize = 1 << 20
    var step = 0
    var log: [String] = []
    /// Check a whole file after every step (slow; set POCKET_FSX_PARANOID=1 to find a failure's origin).
    let paranoid = ProcessInfo.processInfo.environment["POCKET_FSX_PARANOID"] == "1"

    init(directory: String, seed: UInt64) {
        self.directory = directory
        generator = SplitMix64(seed: seed)
    }

    mutating func random(_ bound: Int) -> Int { Int(generator.next() % UInt64(max(bound, 1))) }

    func path(_ name: String) -> String { directory + "/" + name }

    mutating func descriptor(_ name: String) throws -> Int32 {
        if let fd = open[name] { return fd }
        let fd = Glibc.open(path(name), O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw Mismatch(description: "open \(name): \(String(cString: strerror(errno)))") }
        open[name] = fd
        if model[name] == nil { model[name] = [] }
        return fd
    }

    mutating func closeAll() {
        for fd in open.values { Glibc.close(fd) }
        open = [:]
    }

    mutating func run(operations: Int) throws {
        for _ in 0..<operations {
            step += 1
            let name = names[random(names.count)]
            switch random(100) {
            case 0..<40: try write(name)
            case 40..<70: try read(name)
            case 70..<80: try truncate(name)
            case 80..<90: try reopen(name)
            case 90..<95: try rename(name)
            default: try checkSize(name)
            }
            if paranoid, let fd = open[name] {
                let expected = model[name]!
                var buffer = [UInt8](repeating: 0, count: expected.count + 10)
                let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
                if got != expected.count || Array(buffer[0..<max(got, 0)]) != expected {
                    let first = zip(buffer, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
                    throw failure("after this step \(name) reads \(got) bytes, differing at \(first)")
                }
            }
            if log.count > 30, !paranoid { log.removeFirst() }
        }
        for name in names where model[name] != nil { try verifyWhole(name) }
    }

    mutating func write(_ name: String) throws {
        let fd = try descriptor(name)
        let offset = random(maxSize)
        let length = 1 + random(random(4) == 0 ? 200_000 : 5_000)
        let byte = UInt8(truncatingIfNeeded: step)
        let data = (0..<length).map { UInt8(truncatingIfNeeded: Int(byte) &+ $0 &* 31) }
        log.append("\(step) write \(name) @\(offset) +\(length)")
        let written = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, length, off_t(offset)) }
        guard written == length else { throw failure("short write \(written)") }
        var content = model[name]!
        if content.count < offset + length { content += [UInt8](repeating: 0, count: offset + length - content.count) }
        content.replaceSubrange(offset..<offset + length, with: data)
        model[name] = content
    }

    mutating func read(_ name: String) throws {
        let fd = try descriptor(name)
        let content = model[name]!
        let offset = random(content.count + 1000)
        let length = 1 + random(150_000)
        log.append("\(step) read \(name) @\(offset) +\(length)")
        var buffer = [UInt8](repeating: 0xEE, count: length)
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(offset)) }
        let expected = offset < content.count ? Array(content[offset..<min(content.count, offset + length)]) : []
        guard got == expected.count else {
            throw failure(
                "read \(got) bytes, expected \(expected.count) (\(got < 0 ? String(cString: strerror(errno)) : "short"))"
            )
        }
        if Array(buffer[0..<got]) != expected {
            let first = zip(buffer, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            throw failure("bytes differ at \(offset + first)")
        }
    }

    mutating func truncate(_ name: String) throws {
        let fd = try descriptor(name)
        let size = random(maxSize + 100_000)
        log.append("\(step) truncate \(name) to \(size)")
        guard ftruncate(fd, off_t(size)) == 0 else { throw failure("ftruncate: \(String(cString: strerror(errno)))") }
        var content = model[name]!
        if size < content.count {
            content.removeLast(content.count - size)
        } else {
            content += [UInt8](repeating: 0, count: size - content.count)
        }
        model[name] = content
    }

    /// Close (commit) and open again: what comes back is what was written.
    mutating func reopen(_ name: String) throws {
        log.append("\(step) reopen \(name)")
        if let fd = open.removeValue(forKey: name) {
            guard Glibc.close(fd) == 0 else { throw failure("close: \(String(cString: strerror(errno)))") }
        }
        _ = try descriptor(name)
        try checkSize(name)
    }

    mutating func rename(_ name: String) throws {
        let target = names[random(names.count)]
        guard target != name else { return }
        log.append("\(step) rename \(name) -> \(target)")
        for file in [name, target] {
            if let fd = open.removeValue(forKey: file) { Glibc.close(fd) }
        }
        if model[name] == nil {
            _ = try descriptor(name)
            Glibc.close(open.removeValue(forKey: name)!)
        }
        guard Glibc.rename(path(name), path(target)) == 0 else {
            throw failure("rename: \(String(cString: strerror(errno)))")
        }
        model[target] = model.removeValue(forKey: name)
    }

    mutating func checkSize(_ name: String) throws {
        guard model[name] != nil else { return }
        var info = stat()
        guard stat(path(name), &info) == 0 else { throw failure("stat: \(String(cString: strerror(errno)))") }
        guard Int(info.st_size) == model[name]!.count else {
            throw failure("size \(info.st_size), expected \(model[name]!.count)")
        }
    }

    mutating func verifyWhole(_ name: String) throws {
        if let fd = open.removeValue(forKey: name) { Glibc.close(fd) }
        guard let data = FileManager.default.contents(atPath: path(name)) else { throw failure("cannot read \(name)") }
        guard Array(data) == model[name]! else { throw failure("\(name) differs from the model at the end") }
    }

    func failure(_ what: String) -> Mismatch {
        Mismatch(
            description: "step \(step): \(what); recent operations:\n"
                + log.suffix(paranoid ? 100_000 : 12).joined(separator: "\n"))
    }
}
