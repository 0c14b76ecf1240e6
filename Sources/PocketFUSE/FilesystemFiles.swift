import Glibc
import NIOCore
import PocketClient
import PocketProtocol

/// File content: create, open, read, write, flush, fsync, release.
extension PocketFilesystem {
    /// The open state of a file, shared by all its handles on this mount. `temporary` when it was
    /// made just for this call (a truncate of a closed file) and must be closed by the caller.
    func openState(_ ino: UInt64, job: PocketJob, path: String) async throws -> (OpenFile, temporary: Bool) {
        if let file = files.withLock({ $0[ino] }) { return (file, false) }
        let location = try await job.layout(path)
        let file = makeFile(job: job, path: path, location: location)
        let chosen = files.withLock { files in
            if let existing = files[ino] { return existing }
            files[ino] = file
            return file
        }
        await chosen.retain()
        return (chosen, true)
    }

    private func makeFile(job: PocketJob, path: String, location: ObjectLocation) -> OpenFile {
        var settings = OpenFile.Settings(blockSize: job.blockSize, inlineLimit: job.inlineLimit)
        settings.maxDirtyBytes = self.settings.maxDirtyBytesPerFile
        settings.readAheadBlocks = self.settings.readAheadBlocks
        return OpenFile(job: job, path: path, location: location, settings: settings) { [weak self] work in
            self?.submit(work)
        }
    }

    /// Drops one handle; the last one gives back what uncommitted writes held.
    func closeState(_ ino: UInt64, _ file: OpenFile) async {
        guard await file.releaseHandle() == 0 else { return }
        await file.discard()
        files.withLock { files in
            if files[ino] === file { files.removeValue(forKey: ino) }
        }
    }

    public func open(_ ino: UInt64, truncate: Bool) async throws {
        let (jobName, path) = try jobEntry(ino)
        let job = try await job(jobName)
        let file: OpenFile
        if let existing = files.withLock({ $0[ino] }) {
            file = existing
            await file.retain()
        } else {
            (file, _) = try await openState(ino, job: job, path: path)
        }
        if truncate {
            try await file.truncate(to: 0)
            try await file.flush()
        }
    }

    public func create(parent: UInt64, name: String, mode: UInt32, exclusive: Bool) async throws -> Attributes {
        try Self.validName(name)
        let (jobName, directory) = try jobEntry(parent)
        let path = InodeTable.join(directory, name)
        let job = try await job(jobName)
        let info = try await job.create(path, mode: mode, exclusive: exclusive)
        let ino = inodes.withLock { $0.number(job: jobName, path: path, lookup: true) }
        if let existing = files.withLock({ $0[ino] }) {
            await existing.retain()
        } else {
            let location =
                info.size == 0
                ? ObjectLocation(size: 0, blockSize: UInt32(job.blockSize), inline: ByteBuffer(), blocks: [])
                : try await job.layout(path)
            let file = makeFile(job: job, path: path, location: location)
            let chosen = files.withLock { files in
                if let existing = files[ino] { return existing }
                files[ino] = file
                return file
            }
            await chosen.retain()
        }
        return await attributes(ino, info)
    }

    private func openFile(_ ino: UInt64) throws -> OpenFile {
        guard let file = files.withLock({ $0[ino] }) else { throw FuseError(EBADF) }
        return file
    }

    public func read(_ ino: UInt64, offset: UInt64, size: Int) async throws -> ByteBuffer {
        try await openFile(ino).read(at: offset, length: size)
    }

    public func write(_ ino: UInt64, offset: UInt64, data: ByteBuffer) async throws -> Int {
        try await openFile(ino).write(at: offset, data)
    }

    /// close(2) and fsync(2): everything written so far is committed, or the error is returned.
    public func flush(_ ino: UInt64) async throws {
        guard let file = files.withLock({ $0[ino] }) else { return }
        try await file.flush()
    }

    public func release(_ ino: UInt64) async {
        guard let file = files.withLock({ $0[ino] }) else { return }
        await closeState(ino, file)
    }
}
