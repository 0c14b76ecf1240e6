/// FUSE inode numbers for the entries the kernel knows, each naming a job and a path in it.
/// Inode 1 is the mount root (the list of jobs); a job's directory is (job, ""). The kernel's lookup
/// counts decide when a number is forgotten; renames rewrite the paths of everything below.
public struct InodeTable: Sendable {
    public static let root: UInt64 = 1

    public struct Entry: Hashable, Sendable {
        /// nil for the mount root.
        public var job: String?
        /// Path inside the job, "" for the job's root, components joined by "/".
        public var path: String
        public var lookups: UInt64
        /// The file's change time as this mount last saw it at a lookup by name or made it with a
        /// commit (files only).
        public var changed: Int64?

        public var name: String { path.split(separator: "/").last.map(String.init) ?? job ?? "" }
    }

    private struct Key: Hashable {
        var job: String
        var path: String
    }

    private var entries: [UInt64: Entry] = [root: Entry(job: nil, path: "", lookups: 1)]
    private var numbers: [Key: UInt64] = [:]
    private var next: UInt64 = 2

    public init() {}

    public func entry(_ ino: UInt64) -> Entry? { entries[ino] }

    public static func join(_ directory: String, _ name: String) -> String {
        directory.isEmpty ? name : directory + "/" + name
    }

    /// The number (job, path) has now, if any.
    public func existing(job: String, path: String) -> UInt64? {
        numbers[Key(job: job, path: path)]
    }

    /// The number for (job, path), made if new. `lookup` counts a reference the kernel now holds.
    public mutating func number(job: String, path: String, lookup: Bool) -> UInt64 {
        let key = Key(job: job, path: path)
        if let ino = numbers[key] {
            if lookup { entries[ino]!.lookups += 1 }
            return ino
        }
        let ino = next
        next += 1
        entries[ino] = Entry(job: job, path: path, lookups: lookup ? 1 : 0)
        numbers[key] = ino
        return ino
    }

    /// The number for a file that the kernel looks up by name, made anew when the file changed since
    /// the last lookup and `isOpen` says no handle here has it open. With the kernel's writeback
    /// cache, a cached inode keeps its size and pages whatever the server says; a fresh number is
    /// how a change made by another mount reaches this one (after the entry timeout, as before).
    public mutating func fileNumber(job: String, path: String, changed: Int64, isOpen: (UInt64) -> Bool) -> UInt64 {
        if let ino = existing(job: job, path: path), let known = entries[ino]?.changed, known != changed {
            // Open here: the number stays for now, and so does the change time it knew, so that the
            // first lookup after the last close still sees the change.
            if isOpen(ino) { return number(job: job, path: path, lookup: true) }
            detach(job: job, path: path)
        }
        let ino = number(job: job, path: path, lookup: true)
        entries[ino]!.changed = changed
        return ino
    }

    /// This mount changed the file (its commit was answered with `changed`): not a change for the
    /// next lookup to act on.
    public mutating func noteChange(_ ino: UInt64, changed: Int64) {
        entries[ino]?.changed = changed
    }

    /// The kernel dropped `count` references; the number goes when none are left.
    public mutating func forget(_ ino: UInt64, count: UInt64) {
        guard ino != Self.root, var entry = entries[ino] else { return }
        entry.lookups -= min(count, entry.lookups)
        if entry.lookups == 0 {
            entries.removeValue(forKey: ino)
            if let job = entry.job, numbers[Key(job: job, path: entry.path)] == ino {
                numbers.removeValue(forKey: Key(job: job, path: entry.path))
            }
        } else {
            entries[ino] = entry
        }
    }

    /// The path no longer names this entry (unlink, rmdir, or replaced by a rename): a new entry at
    /// the same path gets a new number, while open files keep the old one.
    public mutating func detach(job: String, path: String) {
        numbers.removeValue(forKey: Key(job: job, path: path))
    }

    /// `from` and everything below it now live at `to`.
    public mutating func rename(job: String, from: String, to: String) {
        detach(job: job, path: to)
        let prefix = from + "/"
        for (key, ino) in numbers where key.job == job && (key.path == from || key.path.hasPrefix(prefix)) {
            let moved = to + key.path.dropFirst(from.count)
            numbers.removeValue(forKey: key)
            numbers[Key(job: job, path: moved)] = ino
            entries[ino]?.path = moved
        }
    }

    /// Every number of a job goes (the job was deregistered).
    public mutating func dropJob(_ job: String) {
        for (key, _) in numbers where key.job == job { numbers.removeValue(forKey: key) }
    }

    public var count: Int { entries.count }
}
