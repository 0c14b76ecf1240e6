import Glibc
import Logging
import NIOCore
import PocketClient
import PocketProtocol
import PocketRPC
import Synchronization

/// Pocket as a file system: the mount's root lists jobs, each job's namespace is a directory. Every
/// operation is an async method returning what the kernel is to be told; `FuseBridge` turns
/// libfuse's callbacks into calls of these and their results into replies.
public final class PocketFilesystem: Sendable {
    public struct Settings: Sendable {
        /// How long the kernel may trust attributes and names (the cross-mount staleness bound).
        public var attributeTimeout = 1.0
        public var entryTimeout = 1.0
        public var maxDirtyBytesPerFile = 64 << 20
        /// Unsent write data across all open files before writers wait.
        public var maxDirtyBytes = 256 << 20
        public var readAheadBlocks = 32
        public init() {}
    }

    /// What `stat` shows for an entry.
    public struct Attributes: Sendable {
        public var ino: UInt64
        public var kind: EntryKind
        public var size: UInt64
        public var mode: UInt32
        public var modified: Int64
        public var changed: Int64
    }

    public struct DirectoryEntry: Sendable {
        public var name: String
        public var ino: UInt64
        public var kind: EntryKind
    }

    let client: PocketClient
    let tokens: TokenStore
    let settings: Settings
    let logger: Logger
    let inodes = Mutex(InodeTable())
    private let jobs = Mutex<[String: PocketJob]>([:])
    /// Open files by inode, with how many handles (opens not yet released) share each.
    let files = Mutex<[UInt64: (file: OpenFile, handles: Int)]>([:])
    let directories = Mutex<[UInt64: [DirectoryEntry]]>([:])
    /// Per inode, the committed content the kernel's cached pages hold (see `open`).
    let pageCache = Mutex<[UInt64: CommittedContent]>([:])
    private let nextHandle = Atomic<UInt64>(1)
    private let work: AsyncStream<@Sendable () async -> Void>
    private let workQueue: AsyncStream<@Sendable () async -> Void>.Continuation
    let mountedAt: Int64
    let dirtyBudget: DirtyBudget

    public init(client: PocketClient, tokens: TokenStore, settings: Settings = .init(), logger: Logger) {
        self.client = client
        self.tokens = tokens
        self.settings = settings
        self.logger = logger
        (work, workQueue) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        mountedAt = Self.now()
        dirtyBudget = DirtyBudget(limit: settings.maxDirtyBytes)
    }

    // MARK: Work

    /// Runs submitted work until `finish`; every request's work runs in this task group.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await item in work { group.addTask { await item() } }
        }
    }

    /// Queues work (a request, a background upload) to run in `run`'s task group.
    public func submit(_ item: @escaping @Sendable () async -> Void) {
        if case .terminated = workQueue.yield(item) {
            logger.warning("work submitted after shutdown was dropped")
        }
    }

    public func finish() {
        workQueue.finish()
    }

    func newHandle() -> UInt64 { nextHandle.add(1, ordering: .relaxed).oldValue }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    // MARK: Names

    /// The job and path an inode names; the mount root has no job.
    func entry(_ ino: UInt64) throws -> InodeTable.Entry {
        guard let entry = inodes.withLock({ $0.entry(ino) }) else { throw FuseError(ENOENT) }
        return entry
    }

    /// The job of an inode inside a job (EPERM at the mount root, where only jobs live).
    func jobEntry(_ ino: UInt64) throws -> (job: String, path: String) {
        let entry = try entry(ino)
        guard let job = entry.job else { throw FuseError(EPERM) }
        return (job, entry.path)
    }

    /// An open handle on a job, from this mount's cache or the token store.
    func job(_ name: String) async throws -> PocketJob {
        if let job = jobs.withLock({ $0[name] }) { return job }
        guard let token = tokens.load(job: name) else { throw FuseError(EACCES) }
        do {
            let job = try await client.openJob(name, token: token)
            jobs.withLock { $0[name] = job }
            return job
        } catch let error as PocketError where error.code == .unknownJob {
            throw FuseError(ENOENT)
        }
    }

    func forgetJob(_ name: String) {
        jobs.withLock { _ = $0.removeValue(forKey: name) }
        inodes.withLock { $0.dropJob(name) }
    }

    func remember(_ job: PocketJob) {
        jobs.withLock { $0[job.name] = job }
    }

    /// Mode bits a file keeps through the mount: no set-user-ID or set-group-ID (the mount is
    /// `nosuid`, and the kernel is told there is never a privilege to drop on write).
    static let modeBits: UInt32 = 0o1777

    static func validName(_ name: String) throws {
        guard !name.isEmpty, name != ".", name != "..", name.utf8.count <= 255 else { throw FuseError(EINVAL) }
    }

    // MARK: Attributes

    func attributes(_ ino: UInt64, _ info: EntryInfo) async -> Attributes {
        var size = info.size
        if info.kind == .file, let file = openFile(ino) { size = await file.currentSize }
        let mode = info.kind == .symlink ? 0o777 : info.mode
        return Attributes(
            ino: ino, kind: info.kind, size: size, mode: mode, modified: info.modified, changed: info.changed)
    }

    func rootAttributes() -> Attributes {
        Attributes(
            ino: InodeTable.root, kind: .directory, size: 0, mode: 0o755, modified: mountedAt, changed: mountedAt)
    }

    public func getattr(_ ino: UInt64) async throws -> Attributes {
        let entry = try entry(ino)
        guard let name = entry.job else { return rootAttributes() }
        do {
            return await attributes(ino, try await job(name).stat(entry.path))
        } catch let error as FuseError where error.errno == EACCES && entry.path.isEmpty {
            return foreignJobAttributes(ino)
        }
    }

    /// A job this mount holds no token for: listed, not enterable.
    func foreignJobAttributes(_ ino: UInt64) -> Attributes {
        Attributes(ino: ino, kind: .directory, size: 0, mode: 0o700, modified: mountedAt, changed: mountedAt)
    }

    public func lookup(parent: UInt64, name: String) async throws -> Attributes {
        let parentEntry = try entry(parent)
        guard let jobName = parentEntry.job else {
            // A job directory.
            guard try await client.listJobs().contains(where: { $0.name == name }) else { throw FuseError(ENOENT) }
            let ino = inodes.withLock { $0.number(job: name, path: "", lookup: true) }
            do {
                return await attributes(ino, try await job(name).stat(""))
            } catch let error as FuseError where error.errno == EACCES {
                return foreignJobAttributes(ino)
            }
        }
        let path = InodeTable.join(parentEntry.path, name)
        let info = try await job(jobName).stat(path)
        let ino = inodes.withLock { table in
            info.kind == .file
                ? table.fileNumber(job: jobName, path: path, changed: info.changed) { self.openFile($0) != nil }
                : table.number(job: jobName, path: path, lookup: true)
        }
        return await attributes(ino, info)
    }

    public func forget(_ ino: UInt64, count: UInt64) {
        let gone = inodes.withLock { table in
            table.forget(ino, count: count)
            return table.entry(ino) == nil
        }
        // The kernel dropped the inode, and its pages with it.
        if gone { pageCache.withLock { _ = $0.removeValue(forKey: ino) } }
    }

    public func readlink(_ ino: UInt64) async throws -> String {
        let (jobName, path) = try jobEntry(ino)
        let info = try await job(jobName).stat(path)
        guard info.kind == .symlink else { throw FuseError(EINVAL) }
        return info.symlinkTarget
    }

    /// Changes mode, times or size; sizes go through the file's content so growth reads as zeros.
    public func setattr(
        _ ino: UInt64, mode: UInt32?, size: UInt64?, modified: Int64?
    ) async throws -> Attributes {
        let (jobName, path) = try jobEntry(ino)
        let job = try await job(jobName)
        if let size {
            // Through the file's open state (made for the call when it is not open), so the new
            // size is committed and other handles see it.
            let file = try await acquire(ino, job: job, path: path) { try await job.layout(path) }
            let result = await capture {
                try await file.truncate(to: size)
                await noteCommitted(ino, file, changed: try await file.flush())
            }
            await releaseHandle(ino)
            try result.get()
        }
        var info: EntryInfo
        if mode != nil || modified != nil {
            info = try await job.setAttributes(path, mode: mode, modified: modified)
        } else {
            info = try await job.stat(path)
        }
        if info.kind == .directory, size != nil { throw FuseError(EISDIR) }
        return await attributes(ino, info)
    }

    public func statfs() async throws -> (capacity: UInt64, used: UInt64, files: UInt64) {
        let status = try await client.status()
        let storage = status.servers.filter { $0.kind == .storage && $0.state != .dead }
        let capacity = storage.reduce(0) { $0 + $1.stats.capacityBytes }
        let used = storage.reduce(0) { $0 + $1.stats.usedBytes }
        return (capacity, min(used, capacity), UInt64(inodes.withLock { $0.count }))
    }
}

func capture(_ body: () async throws -> Void) async -> Result<Void, any Error> {
    do {
        try await body()
        return .success(())
    } catch {
        return .failure(error)
    }
}
