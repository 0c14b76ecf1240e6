import CFuse
import Glibc
import NIOCore

/// libfuse's low-level callbacks. Each one copies what it needs out of the kernel's arguments
/// (they are only valid during the call), queues the operation on the filesystem and returns; the
/// reply is sent when the operation finishes, so one slow request never holds a loop thread.
enum FuseOperations {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { _, conn in
            guard let conn else { return }
            conn.pointee.max_write = 1 << 20
            conn.pointee.max_readahead = 1 << 20
            // Read-ahead and write-back requests are "background" ones: the kernel's default of 12
            // in flight left reads waiting (fio 1 MiB reads went from ~830 to ~1,050 MiB/s).
            conn.pointee.max_background = 64
            conn.pointee.congestion_threshold = 48
            // The writeback cache turns tools' small writes into page-cache copies and 1 MiB
            // requests; changes by other mounts reach this one as fresh inode numbers (lookup).
            conn.pointee.want |= CFuse_cap_async_read() | CFuse_cap_parallel_dirops() | CFuse_cap_writeback_cache()
            conn.pointee.want &= ~CFuse_cap_auto_inval_data()
        }
        ops.lookup = { req, parent, name in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            request.run { fs in request.entry(try await fs.lookup(parent: parent, name: name), fs.settings) }
        }
        ops.forget = { req, ino, count in
            let request = FuseRequest(raw: req!)
            request.filesystem.forget(ino, count: count)
            request.none()
        }
        ops.forget_multi = { req, count, forgets in
            let request = FuseRequest(raw: req!)
            for index in 0..<count {
                request.filesystem.forget(forgets![index].ino, count: forgets![index].nlookup)
            }
            request.none()
        }
        ops.getattr = { req, ino, _ in
            let request = FuseRequest(raw: req!)
            request.run { fs in request.attributes(try await fs.getattr(ino), fs.settings) }
        }
        ops.setattr = { req, ino, attr, toSet, _ in
            let request = FuseRequest(raw: req!)
            let attr = attr!.pointee
            let mode: UInt32? = toSet & (1 << 0) != 0 ? UInt32(attr.st_mode) & PocketFilesystem.modeBits : nil
            let size: UInt64? = toSet & (1 << 3) != 0 ? UInt64(attr.st_size) : nil
            let modified: Int64? =
                toSet & (1 << 8) != 0
                ? PocketFilesystem.now() : toSet & (1 << 5) != 0 ? attr.st_mtim.nanoseconds : nil
            request.run { fs in
                request.attributes(try await fs.setattr(ino, mode: mode, size: size, modified: modified), fs.settings)
            }
        }
        ops.readlink = { req, ino in
            let request = FuseRequest(raw: req!)
            request.run { fs in request.link(try await fs.readlink(ino)) }
        }
        ops.mkdir = { req, parent, name, mode in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            request.run { fs in request.entry(try await fs.mkdir(parent: parent, name: name, mode: mode), fs.settings) }
        }
        ops.unlink = { req, parent, name in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            request.run { fs in
                try await fs.unlink(parent: parent, name: name)
                request.ok()
            }
        }
        ops.rmdir = { req, parent, name in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            request.run { fs in
                try await fs.rmdir(parent: parent, name: name)
                request.ok()
            }
        }
        ops.symlink = { req, link, parent, name in
            let (request, target, name) = (FuseRequest(raw: req!), String(cString: link!), String(cString: name!))
            request.run { fs in
                request.entry(try await fs.symlink(target: target, parent: parent, name: name), fs.settings)
            }
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            let request = FuseRequest(raw: req!)
            let (name, newName) = (String(cString: name!), String(cString: newName!))
            request.run { fs in
                try await fs.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags)
                request.ok()
            }
        }
        ops.open = { req, ino, info in
            let request = FuseRequest(raw: req!)
            var info = FileInfo(info!.pointee)
            info.raw.fh = ino
            let truncate = info.raw.flags & O_TRUNC != 0 && info.raw.flags & O_ACCMODE != O_RDONLY
            request.run { [info] fs in
                var reply = info
                reply.raw.keep_cache = try await fs.open(ino, truncate: truncate) ? 1 : 0
                request.open(reply.raw)
            }
        }
        ops.create = { req, parent, name, mode, info in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            let info = FileInfo(info!.pointee)
            let exclusive = info.raw.flags & O_EXCL != 0
            request.run { fs in
                let attributes = try await fs.create(
                    parent: parent, name: name, mode: UInt32(mode) & PocketFilesystem.modeBits, exclusive: exclusive)
                var reply = info
                reply.raw.fh = attributes.ino
                request.create(attributes, fs.settings, reply.raw)
            }
        }
        ops.read = { req, ino, size, offset, _ in
            let request = FuseRequest(raw: req!)
            request.run { fs in request.gathered(try await fs.read(ino, offset: UInt64(offset), size: size)) }
        }
        ops.write = { req, ino, buffer, size, offset, _ in
            let request = FuseRequest(raw: req!)
            var data = ByteBufferAllocator().buffer(capacity: size)
            data.writeBytes(UnsafeRawBufferPointer(start: buffer, count: size))
            request.run { [data] fs in request.written(try await fs.write(ino, offset: UInt64(offset), data: data)) }
        }
        ops.flush = { req, ino, _ in
            let request = FuseRequest(raw: req!)
            request.run { fs in
                try await fs.flush(ino)
                request.ok()
            }
        }
        ops.fsync = { req, ino, _, _ in
            let request = FuseRequest(raw: req!)
            request.run { fs in
                try await fs.flush(ino)
                request.ok()
            }
        }
        ops.release = { req, ino, _ in
            let request = FuseRequest(raw: req!)
            request.run { fs in
                await fs.release(ino)
                request.ok()
            }
        }
        ops.opendir = { req, ino, info in
            let request = FuseRequest(raw: req!)
            let info = FileInfo(info!.pointee)
            request.run { fs in
                var reply = info
                reply.raw.fh = try await fs.opendir(ino)
                request.open(reply.raw)
            }
        }
        ops.readdir = { req, _, size, offset, info in
            let request = FuseRequest(raw: req!)
            let handle = info!.pointee.fh
            request.run { fs in request.directory(try fs.readdir(handle: handle, offset: Int(offset)), size: size) }
        }
        ops.releasedir = { req, _, info in
            let request = FuseRequest(raw: req!)
            request.filesystem.releasedir(handle: info!.pointee.fh)
            request.ok()
        }
        ops.fsyncdir = { req, _, _, _ in FuseRequest(raw: req!).ok() }
        ops.statfs = { req, _ in
            let request = FuseRequest(raw: req!)
            request.run { fs in
                let totals = try await fs.statfs()
                request.statfs(capacity: totals.capacity, used: totals.used, files: totals.files)
            }
        }
        ops.setxattr = { req, ino, name, value, size, flags in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            let text = String(decoding: UnsafeRawBufferPointer(start: value, count: size), as: UTF8.self)
            let mode: PocketFilesystem.XattrSetMode = flags & 1 != 0 ? .create : flags & 2 != 0 ? .replace : .any
            request.run { fs in
                try await fs.setxattr(ino, name: name, value: text, mode: mode)
                request.ok()
            }
        }
        ops.removexattr = { req, ino, name in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            request.run { fs in
                try await fs.setxattr(ino, name: name, value: nil, mode: .any)
                request.ok()
            }
        }
        ops.getxattr = { req, ino, name, size in
            let (request, name) = (FuseRequest(raw: req!), String(cString: name!))
            guard request.filesystem.hasAttributes(ino) else {
                request.filesystem.logger.trace("getxattr \(name) of inode \(ino): none")
                return request.error(FuseError(ENODATA))
            }
            request.run { fs in request.sized(Array(try await fs.getxattr(ino, name: name).utf8), limit: size) }
        }
        ops.listxattr = { req, ino, size in
            let request = FuseRequest(raw: req!)
            request.run { fs in
                let names = try await fs.listxattr(ino).flatMap { name -> [UInt8] in Array(name.utf8) + [0] }
                request.sized(names, limit: size)
            }
        }
        return ops
    }
}

extension FuseRequest {
    /// Runs `body` in the filesystem's task group; a thrown error becomes the errno reply.
    func run(_ body: @escaping @Sendable (PocketFilesystem) async throws -> Void) {
        let filesystem = self.filesystem
        filesystem.submit {
            do {
                try await body(filesystem)
            } catch {
                self.error(error)
            }
        }
    }

    /// An xattr answer: its size when asked for 0 bytes, ERANGE when it does not fit.
    func sized(_ value: [UInt8], limit: Int) {
        if limit == 0 {
            xattrSize(value.count)
        } else if value.count > limit {
            fuse_reply_err(raw, ERANGE)
        } else {
            bytes(value)
        }
    }
}

/// A copy of the kernel's file info, carried to the reply. (@unchecked: a plain C struct of
/// integers and flags, copied by value.)
struct FileInfo: @unchecked Sendable {
    var raw: fuse_file_info
    init(_ raw: fuse_file_info) { self.raw = raw }
}
