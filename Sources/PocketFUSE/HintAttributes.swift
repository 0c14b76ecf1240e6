import Foundation
import PocketProtocol

/// The job directory's extended attributes: five writable hints and two read-only views.
public enum HintAttributes {
    public static let latencySensitive = "user.pocket.latency_sensitive"
    public static let maxLambdas = "user.pocket.max_lambdas"
    public static let peakThroughput = "user.pocket.peak_throughput"
    public static let capacity = "user.pocket.capacity"
    public static let replication = "user.pocket.replication"
    public static let allocation = "user.pocket.allocation"
    public static let weightMap = "user.pocket.weightmap"

    public static let writable = [latencySensitive, maxLambdas, peakThroughput, capacity, replication]
    public static let readOnly = [allocation, weightMap]

    /// The names `listxattr` reports: the hints that are set, then the read-only views.
    public static func names(for hints: JobHints) -> [String] {
        var names: [String] = []
        if hints.latencySensitive != nil { names.append(latencySensitive) }
        if hints.maxLambdas != nil { names.append(maxLambdas) }
        if hints.peakThroughput != nil { names.append(peakThroughput) }
        if hints.capacity != nil { names.append(capacity) }
        if hints.replication != nil { names.append(replication) }
        return names + readOnly
    }

    /// The value of an attribute, or nil when it is not set (ENODATA).
    public static func value(_ name: String, job: JobInfo, servers: [ServerInfo]) -> String? {
        let hints = job.hints
        switch name {
        case latencySensitive: return hints.latencySensitive.map { $0 ? "1" : "0" }
        case maxLambdas: return hints.maxLambdas.map { String($0) }
        case peakThroughput: return hints.peakThroughput.map { Units.formatRate($0) }
        case capacity: return hints.capacity.map { Units.formatSize($0) }
        case replication: return hints.replication.map { String($0) }
        case allocation:
            return job.allocation.summary
        case weightMap:
            return job.weightMap.entries.map { entry in
                let server = servers.first { $0.id == entry.server }
                let weight = (entry.weight * 1000).rounded() / 1000
                return "\(entry.server)@\(server?.address ?? "?")/\(server.map { "\($0.tier)" } ?? "?")=\(weight)"
            }.joined(separator: " ")
        default: return nil
        }
    }

    public enum Failure: Error, Equatable {
        /// Not one of ours (ENODATA on get, ENOTSUP on set).
        case unknown
        /// Read-only (EPERM).
        case readOnly
        /// A bad value (EINVAL).
        case invalid(String)
    }

    /// `hints` with attribute `name` set to `text` (nil removes it).
    public static func applying(_ name: String, _ text: String?, to hints: JobHints) throws(Failure) -> JobHints {
        var hints = hints
        if readOnly.contains(name) { throw .readOnly }
        // setfattr and shells may leave a trailing newline or NUL; spaces around a value mean nothing.
        let value = text.map { $0.trimmingCharacters(in: .whitespacesAndNewlines.union(["\0"])) }
        switch name {
        case latencySensitive:
            switch value?.lowercased() {
            case nil: hints.latencySensitive = nil
            case "1", "true", "yes": hints.latencySensitive = true
            case "0", "false", "no": hints.latencySensitive = false
            default: throw .invalid("latency_sensitive takes 0 or 1")
            }
        case maxLambdas:
            guard let value else {
                hints.maxLambdas = nil
                break
            }
            guard let count = UInt32(value), count > 0 else { throw .invalid("max_lambdas takes a positive integer") }
            hints.maxLambdas = count
        case peakThroughput:
            guard let value else {
                hints.peakThroughput = nil
                break
            }
            guard let rate = try? Units.parseRate(value), rate > 0 else { throw .invalid("bad throughput '\(value)'") }
            hints.peakThroughput = rate
        case capacity:
            guard let value else {
                hints.capacity = nil
                break
            }
            guard let size = try? Units.parseSize(value), size > 0 else { throw .invalid("bad capacity '\(value)'") }
            hints.capacity = size
        case replication:
            guard let value else {
                hints.replication = nil
                break
            }
            guard let copies = UInt8(value), (1...3).contains(copies) else {
                throw .invalid("replication takes 1, 2 or 3")
            }
            hints.replication = copies
        default:
            throw .unknown
        }
        return hints
    }
}
