import Glibc
import NIOCore
import PocketClient
import PocketProtocol

/// File content: create, open, read, write, flush, fsync, release.
extension PocketFilesystem {
    /// The open state of a file, if some handle has it open.
    func openFile(_ ino: UInt64) -> OpenFile? {
        files.withLock { $0[ino]?.file }
    }

    /// Takes a handle on a file's open state, shared by all its handles on this mount; `location`
    /// makes the state when there is none yet. Counting happens under the lock, so a release racing
    /// an open never drops a state that a handle still uses.
    func acquire(
        _ ino: UInt64, job: PocketJob, path: String, location: () async throws -> ObjectLocation
    ) async throws
        -> OpenFile
    {
        if let file = files.withLock({ files -> OpenFile? in
            guard files[ino] != nil else { return nil }
            files[ino]!.handles += 1
            return files[ino]!.file
        }) {
            return file
        }
        let fresh = makeFile(job: job, path: path, location: try await location())
        return files.withLock { files in
            if files[ino] != nil {
                files[ino]!.handles += 1
                return files[ino]!.file
            }
            files[ino] = (fresh, 1)
            return fresh
        }
    }

    private func makeFile(job: PocketJob, path: String, location: ObjectLocation) -> OpenFile {
        var settings = OpenFile.Settings(blockSize: job.blockSize, inlineLimit: job.inlineLimit)
        settings.maxDirtyBytes = self.settings.maxDirtyBytesPerFile
        settings.readAheadBlocks = self.settings.readAheadBlocks
        return OpenFile(backend: job, path: path, location: location, settings: settings, budget: dirtyBudget) {
            [weak self] work in
            self?.submit(work)
        }
    }

    /// Drops one handle; the last one gives back what uncommitted writes held.
    func releaseHandle(_ ino: UInt64) async {
        let last = files.withLock { files -> OpenFile? in
            guard files[ino] != nil else { return nil }
            files[ino]!.handles -= 1
            guard files[ino]!.handles == 0 else { return nil }
            return files.removeValue(forKey: ino)?.file
        }
        await last?.discard()
    }

    /// Opens a file for a new handle. True when the kernel may keep the pages it has cached of the
    /// file: its committed content is what this mount last opened or committed (block ids are
    /// never reused, so equal ids are equal bytes). A change by another mount drops them, which is
    /// what keeps close-to-open consistency; a file this mount wrote reads back from memory.
    public func open(_ ino: UInt64, truncate: Bool) async throws -> Bool {
        let (jobName, path) = try jobEntry(ino)
        let job = try await job(jobName)
        let file = try await acquire(ino, job: job, path: path) { try await job.layout(path) }
        guard truncate else { return await pagesStillRight(ino, file) }
        do {
            try await file.truncate(to: 0)
            await noteCommitted(ino, file, changed: try await file.flush())
        } catch {
            await releaseHandle(ino)
            throw error
        }
        return false
    }

    /// What this mount committed: the kernel's pages hold it, and the change time it gave the file
    /// is this mount's own (the next lookup keeps the inode number and its pages).
    func noteCommitted(_ ino: UInt64, _ file: OpenFile, changed: Int64?) async {
        let content = await file.committedContent
        pageCache.withLock { $0[ino] = content }
        if let changed { inodes.withLock { $0.noteChange(ino, changed: changed) } }
    }

    /// Whether the kernel's pages of `ino` match what `file` has committed; records it either way.
    private func pagesStillRight(_ ino: UInt64, _ file: OpenFile) async -> Bool {
        let content = await file.committedContent
        return pageCache.withLock { cached in
            defer { cached[ino] = content }
            return cached[ino] == content
        }
    }

    public func create(parent: UInt64, name: String, mode: UInt32, exclusive: Bool) async throws -> Attributes {
        try Self.validName(name)
        let (jobName, directory) = try jobEntry(parent)
        let path = InodeTable.join(directory, name)
        let job = try await job(jobName)
        let info = try await job.create(path, mode: mode, exclusive: exclusive)
        let ino = inodes.withLock { table in
            table.fileNumber(job: jobName, path: path, changed: info.changed) { self.openFile($0) != nil }
        }
        let file = try await acquire(ino, job: job, path: path) {
            info.size == 0
                ? ObjectLocation(size: 0, blockSize: UInt32(job.blockSize), inline: ByteBuffer(), blocks: [])
                : try await job.layout(path)
        }
        await noteCommitted(ino, file, changed: nil)
        return await attributes(ino, info)
    }

    private func handle(_ ino: UInt64) throws -> OpenFile {
        guard let file = openFile(ino) else { throw FuseError(EBADF) }
        return file
    }

    public func read(_ ino: UInt64, offset: UInt64, size: Int) async throws -> [ByteBuffer] {
        try await handle(ino).read(at: offset, length: size)
    }

    public func write(_ ino: UInt64, offset: UInt64, data: ByteBuffer) async throws -> Int {
        try await handle(ino).write(at: offset, data)
    }

    /// close(2) and fsync(2): everything written so far is committed, or the error is returned.
    public func flush(_ ino: UInt64) async throws {
        guard let file = openFile(ino) else { return }
        await noteCommitted(ino, file, changed: try await file.flush())
    }

    public func release(_ ino: UInt64) async {
        await releaseHandle(ino)
    }
}
