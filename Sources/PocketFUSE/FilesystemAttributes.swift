import Glibc
import PocketClient
import PocketProtocol

/// Hints as extended attributes of a job's directory.
extension PocketFilesystem {
    public enum XattrSetMode: Sendable {
        case any, create, replace
    }

    /// Whether `ino` can have attributes (only job directories do). Answered without a task: with
    /// the writeback cache the kernel asks for `security.capability` before every write.
    /// An unknown inode answers true, so that the full path reports it (ENOENT).
    public func hasAttributes(_ ino: UInt64) -> Bool {
        do {
            return try jobDirectory(ino) != nil
        } catch {
            return true
        }
    }

    private func jobDirectory(_ ino: UInt64) throws -> String? {
        let entry = try entry(ino)
        guard let job = entry.job, entry.path.isEmpty else { return nil }
        return job
    }

    private func jobInfo(_ name: String) async throws -> (JobInfo, [ServerInfo]) {
        let status = try await client.status()
        guard let info = status.jobs.first(where: { $0.name == name }) else { throw FuseError(ENOENT) }
        return (info, status.servers)
    }

    public func getxattr(_ ino: UInt64, name: String) async throws -> String {
        guard let jobName = try jobDirectory(ino) else { throw FuseError(ENODATA) }
        let (info, servers) = try await jobInfo(jobName)
        guard let value = HintAttributes.value(name, job: info, servers: servers) else { throw FuseError(ENODATA) }
        return value
    }

    public func listxattr(_ ino: UInt64) async throws -> [String] {
        guard let jobName = try jobDirectory(ino) else { return [] }
        return HintAttributes.names(for: try await jobInfo(jobName).0.hints)
    }

    /// Sets (or with nil removes) a hint; the controller recomputes the job's allocation.
    public func setxattr(_ ino: UInt64, name: String, value: String?, mode: XattrSetMode) async throws {
        guard let jobName = try jobDirectory(ino) else { throw FuseError(ENOTSUP) }
        let job = try await job(jobName)
        let (info, servers) = try await jobInfo(jobName)
        let exists = HintAttributes.value(name, job: info, servers: servers) != nil
        if mode == .create, exists { throw FuseError(EEXIST) }
        if mode == .replace || value == nil, !exists, HintAttributes.writable.contains(name) {
            throw FuseError(ENODATA)
        }
        let hints: JobHints
        do {
            hints = try HintAttributes.applying(name, value, to: info.hints)
        } catch .unknown {
            throw FuseError(value == nil ? ENODATA : ENOTSUP)
        } catch .readOnly {
            throw FuseError(EPERM)
        } catch .invalid(let message) {
            logger.info(
                "rejected hint", metadata: ["job.name": "\(jobName)", "xattr": "\(name)", "reason": "\(message)"])
            throw FuseError(EINVAL)
        }
        do {
            _ = try await client.updateHints(jobName, token: job.token, hints: hints)
        } catch let error as PocketError where error.code == .invalidArgument {
            throw FuseError(EINVAL)
        }
    }
}
