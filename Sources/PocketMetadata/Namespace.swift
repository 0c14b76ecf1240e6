import NIOCore
import PocketProtocol

/// One job's file tree: directories, files and symlinks, each a node with a stable id. Files hold
/// their bytes inline (small objects) or as an ordered list of blocks. Pure value: every mutation
/// returns the blocks it released, and the caller frees them on the storage servers.
public struct Namespace: Sendable {
    public typealias NodeID = UInt64
    public static let rootID: NodeID = 1
    public static let maxNameBytes = 255

    public struct FileData: Sendable {
        public var size: UInt64
        public var inline: ByteBuffer?
        public var blocks: [BlockRef]

        public init(size: UInt64, inline: ByteBuffer? = nil, blocks: [BlockRef] = []) {
            self.size = size
            self.inline = inline
            self.blocks = blocks
        }
    }

    public enum Content: Sendable {
        case directory([String: NodeID])
        case file(FileData)
        case symlink(String)
    }

    public struct Node: Sendable {
        public var id: NodeID
        public var parent: NodeID
        public var name: String
        public var content: Content
        public var mode: UInt32
        public var modified: Int64
        public var changed: Int64
        public var persist: Bool

        public var kind: EntryKind {
            switch content {
            case .directory: .directory
            case .file: .file
            case .symlink: .symlink
            }
        }

        public var info: EntryInfo {
            var size: UInt64 = 0
            var target = ""
            switch content {
            case .directory(let children): size = UInt64(children.count)
            case .file(let data): size = data.size
            case .symlink(let link):
                size = UInt64(link.utf8.count)
                target = link
            }
            return EntryInfo(
                node: id, name: name, kind: kind, size: size, mode: mode, modified: modified, changed: changed,
                persist: persist, symlinkTarget: target)
        }
    }

    public private(set) var nodes: [NodeID: Node]
    private var nextID: NodeID = rootID + 1
    /// Bytes held inline by files of this namespace.
    public private(set) var inlineBytes: UInt64 = 0

    public init(now: Int64 = 0) {
        nodes = [
            Self.rootID: Node(
                id: Self.rootID, parent: Self.rootID, name: "", content: .directory([:]), mode: 0o755,
                modified: now, changed: now, persist: false)
        ]
    }

    // MARK: Paths

    /// A path's components; empty and "." components are dropped, ".." is refused.
    public static func components(_ path: String) throws(PocketError) -> [String] {
        var result: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            guard part != ".." else { throw PocketError(.invalidArgument, "'..' is not allowed in '\(path)'") }
            guard part.utf8.count <= maxNameBytes else {
                throw PocketError(.invalidArgument, "a name in '\(path)' is longer than \(maxNameBytes) bytes")
            }
            result.append(String(part))
        }
        return result
    }

    public func resolve(_ path: String) throws(PocketError) -> Node {
        try node(at: Self.components(path), path: path)
    }

    private func node(at components: [String], path: String) throws(PocketError) -> Node {
        var current = nodes[Self.rootID]!
        for name in components {
            guard case .directory(let children) = current.content else {
                throw PocketError(.notDirectory, "a parent of '\(path)' is not a directory")
            }
            guard let child = children[name] else { throw PocketError(.notFound, "'\(path)' does not exist") }
            current = nodes[child]!
        }
        return current
    }

    /// The directory that holds `components.last`, created along the way when `createParents`.
    private mutating func parentDirectory(
        of components: [String], path: String, createParents: Bool, now: Int64
    ) throws(PocketError) -> NodeID {
        guard !components.isEmpty else { throw PocketError(.invalidArgument, "'\(path)' names the job's root") }
        var current = Self.rootID
        for name in components.dropLast() {
            guard case .directory = nodes[current]!.content else {
                throw PocketError(.notDirectory, "a parent of '\(path)' is not a directory")
            }
            if let child = child(named: name, in: current) {
                current = child
            } else if createParents {
                current = insert(
                    name: name, in: current, content: .directory([:]), mode: 0o755, persist: false, now: now)
            } else {
                throw PocketError(.notFound, "the parent directory of '\(path)' does not exist")
            }
        }
        guard case .directory = nodes[current]!.content else {
            throw PocketError(.notDirectory, "the parent of '\(path)' is not a directory")
        }
        return current
    }

    /// The id of `name` in directory `parent`. (A helper, so no binding of the children dictionary
    /// outlives the lookup: a live binding would make the next insert copy the whole directory.)
    private func child(named name: String, in parent: NodeID) -> NodeID? {
        guard case .directory(let children) = nodes[parent]!.content else { return nil }
        return children[name]
    }

    private mutating func insert(
        name: String, in parent: NodeID, content: Content, mode: UInt32, persist: Bool, now: Int64
    ) -> NodeID {
        let id = nextID
        nextID += 1
        nodes[id] = Node(
            id: id, parent: parent, name: name, content: content, mode: mode, modified: now, changed: now,
            persist: persist)
        if case .file(let data) = content, let inline = data.inline { inlineBytes += UInt64(inline.readableBytes) }
        link(id, named: name, into: parent, now: now)
        return id
    }

    private mutating func link(_ id: NodeID, named name: String, into parent: NodeID, now: Int64) {
        guard case .directory(var children) = nodes[parent]!.content else { return }
        nodes[parent]!.content = .directory([:])  // release the old copy so the update is in place
        children[name] = id
        nodes[parent]!.content = .directory(children)
        nodes[parent]!.modified = now
        nodes[parent]!.changed = now
    }

    private mutating func unlink(_ name: String, from parent: NodeID, now: Int64) {
        guard case .directory(var children) = nodes[parent]!.content else { return }
        nodes[parent]!.content = .directory([:])
        children.removeValue(forKey: name)
        nodes[parent]!.content = .directory(children)
        nodes[parent]!.modified = now
        nodes[parent]!.changed = now
    }

    // MARK: Operations

    public mutating func makeDirectory(_ path: String, parents: Bool, now: Int64) throws(PocketError) {
        let components = try Self.components(path)
        if components.isEmpty {
            if parents { return }
            throw PocketError(.alreadyExists, "'\(path)' exists")
        }
        let parent = try parentDirectory(of: components, path: path, createParents: parents, now: now)
        if let existing = child(named: components.last!, in: parent) {
            if parents, case .directory = nodes[existing]!.content { return }
            throw PocketError(.alreadyExists, "'\(path)' exists")
        }
        _ = insert(name: components.last!, in: parent, content: .directory([:]), mode: 0o755, persist: false, now: now)
    }

    /// Creates or replaces the file at `path` (parents are created as needed). Returns the blocks of
    /// the file it replaced.
    public mutating func putFile(
        _ path: String, data: FileData, persist: Bool, now: Int64
    ) throws(PocketError) -> [BlockRef] {
        let components = try Self.components(path)
        let parent = try parentDirectory(of: components, path: path, createParents: true, now: now)
        let name = components.last!
        if let existing = child(named: name, in: parent) {
            guard case .file(let old) = nodes[existing]!.content else {
                throw PocketError(.isDirectory, "'\(path)' is a directory or symlink")
            }
            inlineBytes -= UInt64(old.inline?.readableBytes ?? 0)
            inlineBytes += UInt64(data.inline?.readableBytes ?? 0)
            nodes[existing]!.content = .file(data)
            nodes[existing]!.persist = persist
            nodes[existing]!.modified = now
            nodes[existing]!.changed = now
            return old.blocks
        }
        _ = insert(name: name, in: parent, content: .file(data), mode: 0o644, persist: persist, now: now)
        return []
    }

    public func list(_ path: String, prefix: String) throws(PocketError) -> [EntryInfo] {
        let directory = try resolve(path)
        guard case .directory(let children) = directory.content else {
            throw PocketError(.notDirectory, "'\(path)' is not a directory")
        }
        return children.keys.filter { $0.hasPrefix(prefix) }.sorted().map { nodes[children[$0]!]!.info }
    }

    /// Removes `path`; a directory must be empty unless `recursive`. Returns the blocks released.
    public mutating func delete(
        _ path: String, recursive: Bool, kind: Delete.Kind = .any, now: Int64
    ) throws(PocketError) -> [BlockRef] {
        let target = try resolve(path)
        guard target.id != Self.rootID else { throw PocketError(.invalidArgument, "cannot delete the job's root") }
        switch (kind, target.kind) {
        case (.nonDirectory, .directory): throw PocketError(.isDirectory, "'\(path)' is a directory")
        case (.directory, .file), (.directory, .symlink):
            throw PocketError(.notDirectory, "'\(path)' is not a directory")
        default: break
        }
        if case .directory(let children) = target.content, !children.isEmpty, !recursive {
            throw PocketError(.notEmpty, "'\(path)' is not empty")
        }
        unlink(target.name, from: target.parent, now: now)
        return removeSubtree(target.id)
    }

    /// Creates an empty file; without `exclusive` an existing file is returned as it is.
    public mutating func create(
        _ path: String, mode: UInt32, exclusive: Bool, now: Int64
    ) throws(PocketError) -> Node {
        let components = try Self.components(path)
        let parent = try parentDirectory(of: components, path: path, createParents: false, now: now)
        if let existing = child(named: components.last!, in: parent) {
            guard !exclusive else { throw PocketError(.alreadyExists, "'\(path)' exists") }
            guard case .file = nodes[existing]!.content else {
                throw PocketError(.isDirectory, "'\(path)' is a directory or symlink")
            }
            return nodes[existing]!
        }
        let id = insert(
            name: components.last!, in: parent, content: .file(FileData(size: 0, inline: ByteBuffer())),
            mode: mode & 0o7777, persist: false, now: now)
        return nodes[id]!
    }

    public mutating func makeSymlink(_ path: String, target: String, now: Int64) throws(PocketError) -> Node {
        let components = try Self.components(path)
        let parent = try parentDirectory(of: components, path: path, createParents: false, now: now)
        guard child(named: components.last!, in: parent) == nil else {
            throw PocketError(.alreadyExists, "'\(path)' exists")
        }
        guard !target.isEmpty else { throw PocketError(.invalidArgument, "empty symlink target") }
        let id = insert(
            name: components.last!, in: parent, content: .symlink(target), mode: 0o777, persist: false, now: now)
        return nodes[id]!
    }

    public mutating func setAttributes(
        _ path: String, mode: UInt32?, modified: Int64?, now: Int64
    ) throws(PocketError) -> Node {
        let id = try resolve(path).id
        if let mode { nodes[id]!.mode = mode & 0o7777 }
        if let modified { nodes[id]!.modified = modified }
        nodes[id]!.changed = now
        return nodes[id]!
    }

    private mutating func removeSubtree(_ id: NodeID) -> [BlockRef] {
        guard let node = nodes.removeValue(forKey: id) else { return [] }
        switch node.content {
        case .directory(let children):
            return children.values.flatMap { removeSubtree($0) }
        case .file(let data):
            inlineBytes -= UInt64(data.inline?.readableBytes ?? 0)
            return data.blocks
        case .symlink:
            return []
        }
    }

    /// Moves `from` to `to` atomically, replacing a file or an empty directory there, as POSIX
    /// rename does. Returns the blocks of a replaced file.
    public mutating func rename(
        _ from: String, to: String, noReplace: Bool = false, now: Int64
    ) throws(PocketError) -> [BlockRef] {
        let source = try resolve(from)
        guard source.id != Self.rootID else { throw PocketError(.invalidArgument, "cannot rename the job's root") }
        let toComponents = try Self.components(to)
        let parent = try parentDirectory(of: toComponents, path: to, createParents: false, now: now)
        let name = toComponents.last!

        // A directory cannot move into itself or below itself.
        var ancestor = parent
        while true {
            if ancestor == source.id {
                throw PocketError(.invalidArgument, "cannot move '\(from)' inside itself")
            }
            if ancestor == Self.rootID { break }
            ancestor = nodes[ancestor]!.parent
        }

        var released: [BlockRef] = []
        if let existingID = child(named: name, in: parent) {
            if existingID == source.id { return [] }
            guard !noReplace else { throw PocketError(.alreadyExists, "'\(to)' exists") }
            let existing = nodes[existingID]!
            switch (source.content, existing.content) {
            case (.directory, .directory(let grandchildren)):
                guard grandchildren.isEmpty else { throw PocketError(.notEmpty, "'\(to)' is not empty") }
            case (.directory, _):
                throw PocketError(.notDirectory, "'\(to)' is not a directory")
            case (_, .directory):
                throw PocketError(.isDirectory, "'\(to)' is a directory")
            default:
                break
            }
            unlink(name, from: parent, now: now)
            released = removeSubtree(existingID)
        }
        unlink(source.name, from: source.parent, now: now)
        nodes[source.id]!.parent = parent
        nodes[source.id]!.name = name
        nodes[source.id]!.changed = now
        link(source.id, named: name, into: parent, now: now)
        return released
    }

    /// Deletes every file without `persist` (and directories left empty by that). Returns the
    /// released blocks and the number of files kept.
    public mutating func dropEphemeral(now: Int64) -> (released: [BlockRef], kept: Int) {
        var released: [BlockRef] = []
        let kept = prune(Self.rootID, released: &released, now: now)
        return (released, kept)
    }

    /// Prunes below `id`; returns how many persisted files remain there.
    private mutating func prune(_ id: NodeID, released: inout [BlockRef], now: Int64) -> Int {
        let entries: [(name: String, id: NodeID)]
        switch nodes[id]?.content {
        case .directory(let children)?: entries = children.map { ($0.key, $0.value) }
        case .file?: return nodes[id]!.persist ? 1 : 0
        default: return 0
        }
        var kept = 0
        for entry in entries {
            let keptBelow = prune(entry.id, released: &released, now: now)
            kept += keptBelow
            if keptBelow == 0, nodes[entry.id]?.persist != true {
                unlink(entry.name, from: id, now: now)
                released += removeSubtree(entry.id)
            }
        }
        return kept
    }

    /// Every block the namespace references.
    public var allBlocks: [BlockRef] {
        nodes.values.flatMap { node -> [BlockRef] in
            if case .file(let data) = node.content { return data.blocks }
            return []
        }
    }

    /// Moves copies of blocks from one server to another, in whichever files hold them; the new
    /// server goes last, so readers try the surviving copies first. Returns the ids moved.
    public mutating func moveCopies(_ moves: [BlockID: (from: ServerID, to: ServerID)]) -> Set<BlockID> {
        var moved = Set<BlockID>()
        for (id, node) in nodes {
            guard case .file(var data) = node.content,
                data.blocks.contains(where: { moves[$0.id] != nil })
            else { continue }
            for index in data.blocks.indices {
                guard let move = moves[data.blocks[index].id] else { continue }
                var servers = data.blocks[index].servers
                guard let position = servers.firstIndex(of: move.from), !servers.contains(move.to) else { continue }
                servers.remove(at: position)
                servers.append(move.to)
                data.blocks[index].server = servers[0]
                data.blocks[index].replicas = Array(servers.dropFirst())
                moved.insert(data.blocks[index].id)
            }
            nodes[id]!.content = .file(data)
        }
        return moved
    }

    /// Removes a file by node id (delete-after-read). Returns its blocks.
    public mutating func removeFile(id: NodeID, now: Int64) -> [BlockRef] {
        guard let node = nodes[id], node.id != Self.rootID else { return [] }
        unlink(node.name, from: node.parent, now: now)
        return removeSubtree(id)
    }
}
