import Glibc
import PocketClient
import PocketProtocol

/// Directories, links and names: mkdir, unlink, rmdir, symlink, rename, readdir.
extension PocketFilesystem {
    public func mkdir(parent: UInt64, name: String, mode: UInt32) async throws -> Attributes {
        try Self.validName(name)
        let parentEntry = try entry(parent)
        guard let jobName = parentEntry.job else {
            // mkdir /pocket/J registers job J.
            let job: PocketJob
            do {
                job = try await client.registerJob(name)
            } catch let error as PocketError where error.code == .alreadyExists {
                throw FuseError(EEXIST)
            }
            try tokens.save(job: name, token: job.token)
            remember(job)
            let ino = inodes.withLock { $0.number(job: name, path: "", lookup: true) }
            return await attributes(ino, try await job.stat(""))
        }
        let path = InodeTable.join(parentEntry.path, name)
        let job = try await job(jobName)
        try await job.makeDirectory(path)
        var info = try await job.stat(path)
        if mode & Self.modeBits != info.mode { info = try await job.setAttributes(path, mode: mode & Self.modeBits) }
        let ino = inodes.withLock { $0.number(job: jobName, path: path, lookup: true) }
        return await attributes(ino, info)
    }

    public func unlink(parent: UInt64, name: String) async throws {
        let (jobName, directory) = try jobEntry(parent)
        let path = InodeTable.join(directory, name)
        try await job(jobName).delete(path, kind: .nonDirectory)
        await detach(job: jobName, path: path)
    }

    public func rmdir(parent: UInt64, name: String) async throws {
        let parentEntry = try entry(parent)
        guard let jobName = parentEntry.job else {
            // rmdir /pocket/J deregisters job J once it is empty.
            let job = try await job(name)
            guard try await job.list("/").isEmpty else { throw FuseError(ENOTEMPTY) }
            try await client.deregisterJob(job)
            tokens.remove(job: name)
            forgetJob(name)
            return
        }
        let path = InodeTable.join(parentEntry.path, name)
        try await job(jobName).delete(path, kind: .directory)
        await detach(job: jobName, path: path)
    }

    /// The path no longer names its entry; an open file there will not be committed back.
    private func detach(job: String, path: String) async {
        let ino = inodes.withLock { table -> UInt64? in
            let ino = table.existing(job: job, path: path)
            table.detach(job: job, path: path)
            return ino
        }
        if let ino, let file = openFile(ino) { await file.markUnlinked() }
    }

    public func symlink(target: String, parent: UInt64, name: String) async throws -> Attributes {
        try Self.validName(name)
        let (jobName, directory) = try jobEntry(parent)
        let path = InodeTable.join(directory, name)
        let info = try await job(jobName).makeSymlink(path, target: target)
        let ino = inodes.withLock { $0.number(job: jobName, path: path, lookup: true) }
        return await attributes(ino, info)
    }

    public static let renameNoReplace: UInt32 = 1
    public static let renameExchange: UInt32 = 2

    public func rename(parent: UInt64, name: String, newParent: UInt64, newName: String, flags: UInt32) async throws {
        try Self.validName(newName)
        let from = try entry(parent)
        let to = try entry(newParent)
        guard let jobName = from.job, to.job != nil else { throw FuseError(EPERM) }
        guard to.job == jobName else { throw FuseError(EXDEV) }
        guard flags & Self.renameExchange == 0 else { throw FuseError(EINVAL) }
        let source = InodeTable.join(from.path, name)
        let target = InodeTable.join(to.path, newName)
        try await job(jobName).rename(source, to: target, noReplace: flags & Self.renameNoReplace != 0)
        if let replaced = inodes.withLock({ $0.existing(job: jobName, path: target) }), let file = openFile(replaced) {
            await file.markUnlinked()
        }
        inodes.withLock { $0.rename(job: jobName, from: source, to: target) }
        // Open files below the moved path commit to their new names.
        let moved = inodes.withLock { table in
            files.withLock { files in
                files.compactMap { ino, open in table.entry(ino).map { (open.file, $0.path) } }
            }
        }
        for (file, path) in moved { await file.moved(to: path) }
    }

    public func opendir(_ ino: UInt64) async throws -> UInt64 {
        let entry = try entry(ino)
        var listing = [
            DirectoryEntry(name: ".", ino: ino, kind: .directory),
            DirectoryEntry(name: "..", ino: InodeTable.root, kind: .directory),
        ]
        if let jobName = entry.job {
            let children = try await job(jobName).list(entry.path.isEmpty ? "/" : entry.path)
            inodes.withLock { table in
                for child in children {
                    let path = InodeTable.join(entry.path, child.name)
                    listing.append(
                        DirectoryEntry(
                            name: child.name, ino: table.number(job: jobName, path: path, lookup: false),
                            kind: child.kind))
                }
            }
        } else {
            let names = try await client.listJobs().map(\.name)
            inodes.withLock { table in
                for name in names {
                    listing.append(
                        DirectoryEntry(
                            name: name, ino: table.number(job: name, path: "", lookup: false), kind: .directory))
                }
            }
        }
        let handle = newHandle()
        directories.withLock { $0[handle] = listing }
        return handle
    }

    /// Entries from `offset` on (a snapshot taken at opendir, so offsets stay stable).
    public func readdir(handle: UInt64, offset: Int) throws -> ArraySlice<DirectoryEntry> {
        guard let listing = directories.withLock({ $0[handle] }) else { throw FuseError(EBADF) }
        return listing[min(offset, listing.count)...]
    }

    public func releasedir(handle: UInt64) {
        directories.withLock { _ = $0.removeValue(forKey: handle) }
    }
}
