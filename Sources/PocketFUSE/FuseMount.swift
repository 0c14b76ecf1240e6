import CFuse
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A mounted Pocket file system: a libfuse session on `mountpoint`, its multithreaded loop on a
/// thread of its own, and the filesystem's work. `run` serves until the mount goes away (an
/// `umount`, or graceful shutdown, which unmounts).
public final class FuseMount: Service, @unchecked Sendable {
    // @unchecked: `session` is created in `mount` and only handed to libfuse calls that are safe
    // from any thread (exit, unmount) until the loop has ended, then destroyed once.
    public let mountpoint: String
    private let filesystem: PocketFilesystem
    private let session: OpaquePointer
    private let userdata: Unmanaged<PocketFilesystem>
    private let logger: Logger
    private let unmounted = Atomic<Bool>(false)

    public struct Options: Sendable {
        public var threads: UInt32 = 16
        /// Let other users reach the mount (lambdas run as other users); needs root.
        public var allowOther = geteuid() == 0
        /// Kernel read-ahead for the mount, in KiB.
        public var readAheadKiB = 8192
        public init() {}
    }

    public static func mount(
        at mountpoint: String, filesystem: PocketFilesystem, options: Options = .init(), logger: Logger
    ) throws -> FuseMount {
        let path = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        try StaleMounts.clean(path, logger: logger)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)

        var mountOptions = "fsname=pocket,subtype=pocket,default_permissions,nosuid"
        if options.allowOther { mountOptions += ",allow_other" }
        let arguments = ["pocket", "-o", mountOptions]
        var pointers = arguments.map { strdup($0) }
        defer { for pointer in pointers { free(pointer) } }
        let userdata = Unmanaged.passRetained(filesystem)
        var operations = FuseOperations.table()
        let session = pointers.withUnsafeMutableBufferPointer { argv in
            var args = fuse_args(argc: Int32(argv.count), argv: argv.baseAddress, allocated: 0)
            return fuse_session_new(&args, &operations, MemoryLayout<fuse_lowlevel_ops>.size, userdata.toOpaque())
        }
        guard let session else {
            userdata.release()
            throw MountError("cannot create a FUSE session (is /dev/fuse there?)")
        }
        guard fuse_session_mount(session, path) == 0 else {
            fuse_session_destroy(session)
            userdata.release()
            throw MountError("cannot mount \(path) (see above; is it already mounted?)")
        }
        // Files here never carry set-ID bits or file capabilities, so the kernel may skip its
        // check for them before each write (FUSE_HANDLE_KILLPRIV_V2): without this, every write
        // (tools write 4 KiB at a time) waited for a getxattr of security.capability.
        let initialized = CFuse_session_init_adding(session, CFuse_init_handle_killpriv_v2())
        guard initialized == 0 else {
            fuse_session_unmount(session)
            fuse_session_destroy(session)
            userdata.release()
            throw MountError("the kernel's FUSE handshake failed: \(String(cString: strerror(-initialized)))")
        }
        // The kernel may hold as many dirty bytes for the mount as the daemon holds unsent: FUSE's
        // default (about 1% of the dirty limit, ~44 MB here) stalled tools writing through the
        // writeback cache.
        tuneBackingDevice(
            path, readAheadKiB: options.readAheadKiB, dirtyBytes: filesystem.settings.maxDirtyBytes, logger: logger)
        return FuseMount(
            mountpoint: path, filesystem: filesystem, session: session, userdata: userdata, threads: options.threads,
            logger: logger)
    }

    private let threads: UInt32

    private init(
        mountpoint: String, filesystem: PocketFilesystem, session: OpaquePointer, userdata: Unmanaged<PocketFilesystem>,
        threads: UInt32, logger: Logger
    ) {
        self.mountpoint = mountpoint
        self.threads = threads
        self.filesystem = filesystem
        self.session = session
        self.userdata = userdata
        self.logger = logger
    }

    public func run() async throws {
        let session = SessionPointer(raw: session)
        let threads = self.threads
        await withDiscardingTaskGroup { group in
            group.addTask { await self.filesystem.run() }
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    let thread = Thread {
                        let result = CFuse_session_loop_mt(session.raw, threads)
                        if result != 0 { self.logger.warning("FUSE loop ended with \(result)") }
                        done.resume()
                    }
                    thread.name = "pocket-fuse-loop"
                    thread.start()
                }
            } onGracefulShutdown: {
                self.unmount()
            }
            filesystem.finish()
        }
        unmount()
        fuse_session_destroy(session.raw)
        userdata.release()
        logger.info("unmounted \(mountpoint)")
    }

    /// Ends the loop: a lazy unmount, so the kernel lets go even while files are open.
    public func unmount() {
        guard !unmounted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        fuse_session_exit(session)
        if umount2(mountpoint, Int32(MNT_DETACH)) != 0, errno != EINVAL {
            logger.warning("unmounting \(mountpoint): \(String(cString: strerror(errno)))")
        }
    }

    /// Read-ahead and the dirty-page limit are per backing device; FUSE's defaults (128 KiB, ~1% of
    /// the dirty limit) starve large reads and stall writers. The device comes from
    /// /proc/self/mountinfo: a stat of the mountpoint would wait for the loop. Needs root; without
    /// it the defaults stay.
    private static func tuneBackingDevice(_ path: String, readAheadKiB: Int, dirtyBytes: Int, logger: Logger) {
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
        let device = table.split(separator: "\n").lazy.map { $0.split(separator: " ") }
            .last { $0.count > 4 && StaleMounts.unescape($0[4]) == path }?[2]
        guard let device else { return }
        for (name, value) in [("read_ahead_kb", readAheadKiB), ("max_bytes", dirtyBytes)] {
            let file = "/sys/class/bdi/\(device)/\(name)"
            do {
                try "\(value)\n".write(toFile: file, atomically: false, encoding: .utf8)
            } catch {
                logger.debug("could not set \(file): \(error)")
            }
        }
    }
}

struct SessionPointer: @unchecked Sendable {
    // @unchecked: the loop thread is the only user of the session while it runs.
    let raw: OpaquePointer
}

public struct MountError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Finds a Pocket mount left behind by a daemon that died (its mountpoint answers ENOTCONN) and
/// detaches it, so the next mount can take the place.
public enum StaleMounts {
    public static func clean(_ path: String, logger: Logger) throws {
        guard isFUSEMountpoint(path) else { return }
        // statvfs always reaches the daemon (stat may be answered from the kernel's cache).
        var info = statvfs()
        if statvfs(path, &info) == 0 {
            throw MountError("\(path) is already a live FUSE mount; unmount it first")
        }
        guard errno == ENOTCONN || errno == ECONNABORTED || errno == EIO else { return }
        logger.warning("cleaning up a stale FUSE mount at \(path)")
        guard umount2(path, Int32(MNT_DETACH)) == 0 else {
            throw MountError("cannot clean the stale mount at \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Whether /proc/self/mounts lists a FUSE file system at `path`.
    public static func isFUSEMountpoint(_ path: String) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return false }
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { return false }
            return unescape(fields[1]) == path && fields[2].hasPrefix("fuse")
        }
    }

    /// /proc/mounts writes spaces and friends as octal escapes (\040).
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var index = field.utf8.startIndex
        let utf8 = field.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "\\"), utf8.distance(from: index, to: utf8.endIndex) >= 4,
                let value = UInt8(
                    String(decoding: utf8[utf8.index(after: index)..<utf8.index(index, offsetBy: 4)], as: UTF8.self),
                    radix: 8)
            {
                bytes.append(value)
                index = utf8.index(index, offsetBy: 4)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
