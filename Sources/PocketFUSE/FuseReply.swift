import CFuse
import Glibc
import NIOCore
import PocketProtocol

/// A kernel request awaiting its one reply. libfuse lets any thread reply, exactly once; replies
/// here happen when the request's async work finishes.
struct FuseRequest: @unchecked Sendable {
    // @unchecked: fuse_req_t is an opaque pointer that libfuse allows to be answered from any thread.
    let raw: fuse_req_t

    var filesystem: PocketFilesystem {
        Unmanaged<PocketFilesystem>.fromOpaque(fuse_req_userdata(raw)!).takeUnretainedValue()
    }

    func error(_ error: any Error) {
        let code = (error as? FuseError)?.errno ?? Errno.from(error)
        fuse_reply_err(raw, code)
    }

    func ok() { fuse_reply_err(raw, 0) }

    func none() { fuse_reply_none(raw) }

    func entry(_ attributes: PocketFilesystem.Attributes, _ settings: PocketFilesystem.Settings) {
        var entry = Self.entryParam(attributes, settings)
        fuse_reply_entry(raw, &entry)
    }

    func attributes(_ attributes: PocketFilesystem.Attributes, _ settings: PocketFilesystem.Settings) {
        var st = Self.stat(attributes)
        fuse_reply_attr(raw, &st, settings.attributeTimeout)
    }

    func open(_ info: fuse_file_info) {
        var info = info
        fuse_reply_open(raw, &info)
    }

    func create(
        _ attributes: PocketFilesystem.Attributes, _ settings: PocketFilesystem.Settings, _ info: fuse_file_info
    ) {
        var entry = Self.entryParam(attributes, settings)
        var info = info
        fuse_reply_create(raw, &entry, &info)
    }

    /// Read data as it lies in the blocks: one writev to the kernel, no copy in between.
    func gathered(_ pieces: [ByteBuffer]) {
        var vectors: [iovec] = []
        vectors.reserveCapacity(pieces.count)
        Self.withVectors(pieces[...], &vectors) { vectors in
            _ = fuse_reply_iov(raw, vectors.baseAddress, Int32(vectors.count))
        }
    }

    /// Pins each piece's bytes (nested, so every pointer is valid inside `body`).
    private static func withVectors(
        _ pieces: ArraySlice<ByteBuffer>, _ vectors: inout [iovec], _ body: (UnsafeBufferPointer<iovec>) -> Void
    ) {
        guard let first = pieces.first else { return vectors.withUnsafeBufferPointer(body) }
        first.withUnsafeReadableBytes { bytes in
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
            withVectors(pieces.dropFirst(), &vectors, body)
        }
    }

    func bytes(_ data: [UInt8]) {
        data.withUnsafeBytes { bytes in
            _ = fuse_reply_buf(raw, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }

    func written(_ count: Int) { fuse_reply_write(raw, count) }

    func xattrSize(_ size: Int) { fuse_reply_xattr(raw, size) }

    func link(_ target: String) { fuse_reply_readlink(raw, target) }

    func statfs(capacity: UInt64, used: UInt64, files: UInt64) {
        var info = statvfs()
        let unit: UInt64 = 65536
        info.f_bsize = UInt(unit)
        info.f_frsize = UInt(unit)
        info.f_blocks = fsblkcnt_t(capacity / unit)
        info.f_bfree = fsblkcnt_t((capacity - used) / unit)
        info.f_bavail = info.f_bfree
        info.f_files = fsfilcnt_t(max(files, 1) + 1_000_000)
        info.f_ffree = 1_000_000
        info.f_favail = 1_000_000
        info.f_namemax = 255
        fuse_reply_statfs(raw, &info)
    }

    /// A directory listing page: entries from `offset` while they fit in `size` bytes.
    func directory(_ entries: ArraySlice<PocketFilesystem.DirectoryEntry>, size: Int) {
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        buffer.withUnsafeMutableBufferPointer { pointer in
            for (index, entry) in zip(entries.indices, entries) {
                var st = Glibc.stat()
                st.st_ino = ino_t(entry.ino)
                st.st_mode = Self.typeBits(entry.kind)
                let needed = fuse_add_direntry(
                    raw, pointer.baseAddress! + used, size - used, entry.name, &st, off_t(index + 1))
                if used + needed > size { break }
                used += needed
            }
        }
        buffer.withUnsafeBufferPointer { _ = fuse_reply_buf(raw, $0.baseAddress, used) }
    }

    static func typeBits(_ kind: EntryKind) -> mode_t {
        switch kind {
        case .directory: 0o040000
        case .file: 0o100000
        case .symlink: 0o120000
        }
    }

    static func stat(_ attributes: PocketFilesystem.Attributes) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = ino_t(attributes.ino)
        st.st_mode = typeBits(attributes.kind) | mode_t(attributes.mode & PocketFilesystem.modeBits)
        st.st_nlink = attributes.kind == .directory ? 2 : 1
        st.st_size = off_t(attributes.size)
        st.st_blocks = blkcnt_t((attributes.size + 511) / 512)
        st.st_blksize = 65536
        st.st_uid = getuid()
        st.st_gid = getgid()
        st.st_mtim = timespec(nanoseconds: attributes.modified)
        st.st_atim = st.st_mtim
        st.st_ctim = timespec(nanoseconds: attributes.changed)
        return st
    }

    static func entryParam(
        _ attributes: PocketFilesystem.Attributes, _ settings: PocketFilesystem.Settings
    ) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = attributes.ino
        entry.generation = 0
        entry.attr = stat(attributes)
        entry.attr_timeout = settings.attributeTimeout
        entry.entry_timeout = settings.entryTimeout
        return entry
    }
}

extension timespec {
    init(nanoseconds: Int64) {
        self.init(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    var nanoseconds: Int64 { Int64(tv_sec) * 1_000_000_000 + Int64(tv_nsec) }
}
