import Foundation
import PocketClient
import PocketLocal
import PocketProtocol
import PocketTestSupport
import Testing

@Suite(.serialized) struct MountTests {
    /// A workload of everyday tools; run in a local directory and in a job directory, it must leave
    /// byte-identical trees.
    static let toolWorkload = #"""
        set -e
        seq 1 60000 | awk '{ print ($1 * 7919) % 100003, "row", $1 }' > input
        sort -n -T . input -o sorted
        split -b 65000 input part-
        cat part-* > joined
        cmp input joined
        mkdir -p archive/inner
        cp part-aa archive/inner/
        tar cf bundle.tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner part-* archive
        mkdir extracted
        tar xf bundle.tar -C extracted
        mv sorted sorted-moved
        ln -s sorted-moved link
        cat link | wc -c > link-size
        echo first >> appended
        echo second >> appended
        dd if=input of=patched bs=4096 count=40 2>/dev/null
        dd if=/dev/zero of=patched bs=1000 seek=37 count=3 conv=notrunc 2>/dev/null
        head -c 200000 input > shrunk
        truncate -s 70000 shrunk
        truncate -s 150000 shrunk
        python3 - <<'PY'
        import os
        with open("py-random", "wb") as f:
            f.write(b"a" * 100000)
            f.seek(5)
            f.write(b"hello")
            f.seek(300000)
            f.write(b"tail")
            f.truncate(250000)
        with open("py-random", "r+b") as f:
            f.seek(65530)
            f.write(b"across-a-block-boundary")
            f.seek(0, 2)
            f.write(b"end")
        with open("py-append", "ab") as f:
            for i in range(100):
                f.write(b"line %d\n" % i)
        os.rename("py-append", "py-renamed")
        os.makedirs("nested/deeper", exist_ok=True)
        os.replace("py-renamed", "nested/deeper/final")
        os.chmod("nested/deeper/final", 0o600)
        PY
        rm part-ab
        """#

    static let manifest =
        "find . -type f | sort | xargs sha256sum; find . -type l | sort; stat -c '%n %s %a' nested/deeper/final"

    @Test func unmodifiedToolsBehaveAsOnALocalDisk() async throws {
        try await withMountedCluster { mounted in
            let local = try temporaryDirectory("local")
            defer { try? FileManager.default.removeItem(at: local) }
            let job = mounted.mounts[0] + "/tools"
            try await shell("mkdir \(job)", environment: mounted.environment)

            let onDisk = try await shell(Self.toolWorkload, in: local.path)
            #expect(onDisk.status == 0, "\(onDisk.errors)")
            let onPocket = try await shell(Self.toolWorkload, in: job, environment: mounted.environment)
            #expect(onPocket.status == 0, "\(onPocket.errors)")

            let expected = try await shell(Self.manifest, in: local.path)
            let actual = try await shell(Self.manifest, in: job)
            #expect(actual.status == 0, "\(actual.errors)")
            #expect(actual.output == expected.output)
            #expect(expected.output.contains("sorted-moved"))

            let sizes = try await shell("ls -l input patched shrunk | awk '{print $5, $9}'", in: job)
            #expect(sizes.output == "942236 input\n163840 patched\n150000 shrunk\n")
        }
    }

    @Test func randomOperationsMatchAModel() async throws {
        try await withMountedCluster { mounted in
            let job = mounted.mounts[0] + "/model"
            try FileManager.default.createDirectory(atPath: job, withIntermediateDirectories: false)
            let seed = UInt64(ProcessInfo.processInfo.environment["POCKET_FSX_SEED"] ?? "") ?? 20_261_129
            var checker = ModelChecker(directory: job, seed: seed)
            do {
                try checker.run(operations: 10_000)
            } catch {
                Issue.record("model check failed with seed \(seed) (POCKET_FSX_SEED=\(seed) repeats it): \(error)")
            }
            checker.closeAll()
        }
    }

    @Test func manyProcessesAndTwoJobsAtOnce() async throws {
        try await withMountedCluster { mounted in
            let root = mounted.mounts[0]
            let script = """
                set -e
                mkdir \(root)/left \(root)/right
                for i in 1 2 3 4 5 6; do
                  for job in left right; do
                    ( head -c $((i * 700000 + 13)) /dev/urandom > /tmp/pocket-src-$$-$job-$i
                      cp /tmp/pocket-src-$$-$job-$i \(root)/$job/file-$i
                      cmp /tmp/pocket-src-$$-$job-$i \(root)/$job/file-$i
                      rm /tmp/pocket-src-$$-$job-$i ) &
                  done
                done
                wait
                ls \(root)/left | wc -l
                ls \(root)/right | wc -l
                """
            let result = try await shell(script, environment: mounted.environment)
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output == "6\n6\n")
        }
    }

    @Test func twoMountsSeeClosedFilesWholeAndNeverStale() async throws {
        try await withMountedCluster(mounts: 2) { mounted in
            let a = mounted.mounts[0] + "/shared"
            let b = mounted.mounts[1] + "/shared"
            let environment = mounted.environment
            var result = try await shell(
                "mkdir \(a) && head -c 3000000 /dev/urandom > /tmp/pocket-two-$$ && cp /tmp/pocket-two-$$ \(a)/data "
                    + "&& cmp /tmp/pocket-two-$$ \(b)/data && echo same; rm -f /tmp/pocket-two-$$",
                environment: environment)
            #expect(result.output == "same\n", "\(result.errors)")

            // Replace the file on A (write elsewhere, rename over it); B reads the new bytes once
            // its cached name and attributes have timed out (1 s; scripts/faults-style timings
            // are not this test's business, only that B gets there).
            result = try await shell(
                "cat \(b)/data > /dev/null && seq 1 100000 > \(a)/next && mv \(a)/next \(a)/data",
                environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            try await eventually("B to read the renamed-over file's new bytes") {
                try await shell("seq 1 100000 | cmp -s - \(b)/data", environment: environment).status == 0
            }

            // Same size, new bytes, while B holds the old ones in its page cache: B reads the new.
            let first = mounted.home.appendingPathComponent("same-1").path
            let second = mounted.home.appendingPathComponent("same-2").path
            result = try await shell(
                "mkdir -p \(mounted.home.path) && head -c 2000000 /dev/urandom > \(first) "
                    + "&& head -c 2000000 /dev/urandom > \(second) && cp \(first) \(a)/same",
                environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            try await eventually("B to read the first version of same") {
                try await shell("cmp -s \(first) \(b)/same", environment: environment).status == 0
            }
            result = try await shell("cp \(second) \(a)/same", environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            try await eventually("B to read the second version of same, not its cached first") {
                try await shell("cmp -s \(second) \(b)/same", environment: environment).status == 0
            }

            // Overwrite in place on A; B, once its cached attributes time out, reads the new bytes.
            result = try await shell("echo rewritten > \(a)/data", environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            try await eventually("B to read the rewritten data") {
                try await shell("cat \(b)/data", environment: environment).output == "rewritten\n"
            }

            result = try await shell("rm \(a)/data", environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            try await eventually("B to see data gone") {
                try await shell("test -e \(b)/data", environment: environment).status != 0
            }
        }
    }

    @Test func hintsAreExtendedAttributesOfTheJobDirectory() async throws {
        try await withMountedCluster { mounted in
            let job = mounted.mounts[0] + "/hinted"
            let environment = mounted.environment
            let script = """
                set -e
                mkdir \(job)
                setfattr -n user.pocket.max_lambdas -v 100 \(job)
                setfattr -n user.pocket.peak_throughput -v 2GB/s \(job)
                setfattr -n user.pocket.capacity -v 10GiB \(job)
                setfattr -n user.pocket.latency_sensitive -v 1 \(job)
                getfattr --only-values -n user.pocket.capacity \(job); echo
                getfattr --only-values -n user.pocket.allocation \(job); echo
                getfattr -d \(job) | grep -c user.pocket
                if setfattr -n user.pocket.capacity -v plenty \(job) 2>/dev/null; then echo accepted; else echo refused; fi
                if setfattr -n user.pocket.max_lambdas -v -3 \(job) 2>/dev/null; then echo accepted; else echo refused; fi
                if setfattr -n user.pocket.allocation -v x \(job) 2>/dev/null; then echo accepted; else echo refused; fi
                getfattr --only-values -n user.pocket.capacity \(job); echo
                setfattr -x user.pocket.latency_sensitive \(job)
                python3 - <<'PY'
                import ctypes, errno, os
                path = "\(job)"
                os.setxattr(path, "user.pocket.max_lambdas", b"7")
                print(os.getxattr(path, "user.pocket.max_lambdas").decode())
                try:
                    os.setxattr(path, "user.pocket.max_lambdas", b"zero")
                except OSError as error:
                    print(errno.errorcode[error.errno])
                libc = ctypes.CDLL(None, use_errno=True)
                name = b"user.pocket.allocation"
                size = libc.getxattr(path.encode(), name, None, 0)
                print("size-query", size == len(os.getxattr(path, "user.pocket.allocation")))
                small = ctypes.create_string_buffer(2)
                result = libc.getxattr(path.encode(), name, small, 2)
                print(result, errno.errorcode[ctypes.get_errno()])
                print(sorted(os.listxattr(path)))
                PY
                """
            let result = try await shell(script, environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            let lines = result.output.split(separator: "\n").map(String.init)
            #expect(lines.first == "10 GiB")
            #expect(
                lines.dropFirst().first
                    == "tier=dram throughput=1.86 GiB/s capacity=10 GiB nodes=2 cost=$0.7056/h overcommitted")
            #expect(lines.dropFirst(2).first == "6")
            #expect(Array(lines.dropFirst(3).prefix(4)) == ["refused", "refused", "refused", "10 GiB"])
            #expect(
                Array(lines.dropFirst(7)) == [
                    "7", "EINVAL", "size-query True", "-1 ERANGE",
                    "['user.pocket.allocation', 'user.pocket.capacity', 'user.pocket.max_lambdas', 'user.pocket.peak_throughput', 'user.pocket.weightmap']",
                ])
            let info = try #require(try await mounted.client.listJobs().first { $0.name == "hinted" })
            #expect(
                info.hints
                    == JobHints(latencySensitive: nil, maxLambdas: 7, peakThroughput: 2_000_000_000, capacity: 10 << 30)
            )
        }
    }

    @Test func jobDirectoriesRegisterAndDeregisterJobs() async throws {
        try await withMountedCluster { mounted in
            let root = mounted.mounts[0]
            let environment = mounted.environment
            _ = try await mounted.client.registerJob("from-client")
            var result = try await shell("mkdir \(root)/made-here && ls \(root)", environment: environment)
            #expect(result.output == "from-client\nmade-here\n")
            #expect(try await mounted.client.listJobs().map(\.name).sorted() == ["from-client", "made-here"])

            result = try await shell(
                "head -c 5000000 /dev/urandom > \(root)/made-here/big && mkdir \(root)/made-here/sub && "
                    + "rmdir \(root)/made-here 2>&1; echo $?", environment: environment)
            #expect(result.output.contains("not empty"))
            result = try await shell("rm -r \(root)/made-here && ls \(root)", environment: environment)
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output == "from-client\n")
            #expect(try await mounted.client.listJobs().map(\.name) == ["from-client"])
            for server in mounted.cluster.storageServers {
                #expect(try await ask(server.endpoint, StorageStats()).usedBytes == 0)
            }
        }
    }

    @Test func largeDirectoriesListWholeAndTimesCanBeSet() async throws {
        try await withMountedCluster { mounted in
            let job = mounted.mounts[0] + "/wide"
            let script = """
                set -e
                mkdir \(job) && cd \(job) && mkdir many && cd many
                seq 1 3000 | xargs touch
                ls | wc -l
                ls -f | wc -l
                ls | sort -n | tail -1
                touch -m -d '2001-02-03 04:05:06 UTC' 17
                stat -c %Y 17
                chmod 600 18
                stat -c %a 18
                chmod 6755 19
                stat -c %a 19
                """
            let result = try await shell(script, environment: mounted.environment)
            #expect(result.status == 0, "\(result.errors)")
            // Set-ID bits are not kept (the mount is nosuid; see FuseMount).
            #expect(result.output == "3000\n3002\n3000\n981173106\n600\n755\n")
        }
    }

    @Test func errorsReachToolsAsErrno() async throws {
        try await withMountedCluster(capacity: 8 << 20) { mounted in
            let root = mounted.mounts[0]
            let environment = mounted.environment
            let script = #"""
                mkdir ROOT/one ROOT/two
                head -c 3000000 /dev/urandom > ROOT/one/keep
                cp ROOT/one/keep /tmp/pocket-keep-$$
                dd if=/dev/zero of=ROOT/one/huge bs=1M count=40 2>&1 | grep -o 'No space left on device' | head -1
                cmp ROOT/one/keep /tmp/pocket-keep-$$ && echo intact
                rm -f ROOT/one/huge
                python3 - <<'PY'
                import errno, os
                for call in [lambda: os.rename("ROOT/one/keep", "ROOT/two/keep"),
                             lambda: os.rmdir("ROOT/one"),
                             lambda: open("ROOT/one/missing"),
                             lambda: os.unlink("ROOT/one"),
                             lambda: os.mkdir("ROOT/one"),
                             # Sizes past what a file can hold: refused, the daemon unharmed.
                             lambda: os.truncate("ROOT/one/keep", 999999999999999),
                             lambda: os.truncate("ROOT/one/keep", 2**63 - 1)]:
                    try:
                        call()
                        print("ok")
                    except OSError as error:
                        print(errno.errorcode[error.errno])
                with open("ROOT/one/keep", "r+b") as f:
                    try:
                        os.ftruncate(f.fileno(), 10**15)
                        print("ok")
                    except OSError as error:
                        print(errno.errorcode[error.errno])
                PY
                cmp ROOT/one/keep /tmp/pocket-keep-$$ && echo intact
                rm -f /tmp/pocket-keep-$$
                """#.replacingOccurrences(of: "ROOT", with: root)
            let result = try await shell(script, environment: environment)
            #expect(
                result.output
                    == "No space left on device\nintact\nEXDEV\nENOTEMPTY\nENOENT\nEISDIR\nEEXIST\nEFBIG\nEFBIG\nEFBIG\n"
                    + "intact\n",
                "\(result.errors)")
            // The daemon is still there, and so is the data written before.
            #expect(try await shell("ls \(root)/one", environment: environment).output == "keep\n")
        }
    }

    @Test func smallWritesDoNotWaitForAPrivilegeCheckEach() async throws {
        try await withMountedCluster(logLevel: "trace") { mounted in
            let root = mounted.mounts[0]
            let result = try await shell(
                "mkdir \(root)/small && dd if=/dev/zero of=\(root)/small/f bs=4k count=2000 2>/dev/null && echo ok",
                environment: mounted.environment)
            #expect(result.output == "ok\n", "\(result.errors)")
            // Unless the kernel was told there are never privileges to drop (FUSE_HANDLE_KILLPRIV_V2,
            // added to libfuse's INIT reply), it asks for security.capability before every write.
            let asked = mounted.cluster.mounts[0].log.components(separatedBy: "getxattr security.capability").count - 1
            #expect(asked < 20, "the kernel asked for security.capability \(asked) times for 2,000 writes")
        }
    }

    @Test func aFileReadWhereItWasWrittenComesFromThePageCache() async throws {
        try await withMountedCluster { mounted in
            let root = mounted.mounts[0]
            var result = try await shell(
                "mkdir \(root)/warm && head -c 4000000 /dev/urandom > /tmp/pocket-warm-$$ "
                    + "&& cp /tmp/pocket-warm-$$ \(root)/warm/data && echo /tmp/pocket-warm-$$",
                environment: mounted.environment)
            let copy = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { try? FileManager.default.removeItem(atPath: copy) }
            #expect(result.status == 0, "\(result.errors)")
            // With no storage server left, the bytes can only come from the kernel's cached pages,
            // kept because the file's committed blocks are the ones this mount wrote.
            for server in mounted.cluster.storageServers {
                server.signal(SIGKILL)
                await server.waitUntilExit()
            }
            result = try await shell("cmp \(copy) \(root)/warm/data && echo same", environment: mounted.environment)
            #expect(result.output == "same\n", "\(result.errors)")
        }
    }

    @Test func aDeadStorageServerIsAnIOErrorWithinSeconds() async throws {
        try await withMountedCluster(mounts: 2) { mounted in
            let root = mounted.mounts[0]
            // Read through the other mount: the writer's own kernel still has the bytes it wrote
            // in its page cache, and rightly serves them from there.
            let reader = mounted.mounts[1]
            let environment = mounted.environment
            var result = try await shell(
                "mkdir \(root)/fragile && head -c 4000000 /dev/urandom > \(root)/fragile/data", environment: environment
            )
            #expect(result.status == 0)
            let victim = mounted.cluster.storageServers[0]
            victim.signal(SIGKILL)
            await victim.waitUntilExit()
            // An error, not a hang (the shell's deadline is the hang guard).
            result = try await shell(
                "cat \(reader)/fragile/data > /dev/null", environment: environment, timeout: .seconds(60))
            #expect(result.status != 0)
            #expect(result.errors.contains("Input/output error"))
        }
    }

    @Test func aCrashedMountIsCleanedUpByTheNextOne() async throws {
        try await withMountedCluster { mounted in
            let point = mounted.mounts[0]
            try await shell(
                "mkdir \(point)/survivor && echo kept > \(point)/survivor/note", environment: mounted.environment)
            let daemon = try #require(mounted.cluster.mounts.first)
            daemon.signal(SIGKILL)
            await daemon.waitUntilExit()
            #expect(isMounted(point), "a killed daemon leaves its mount behind")
            try await mounted.cluster.mount(at: point)
            let result = try await shell("cat \(point)/survivor/note", environment: mounted.environment)
            #expect(result.output == "kept\n", "\(result.errors)")
        }
    }

    @Test func fioSequentialReadAndWrite() async throws {
        try await withMountedCluster { mounted in
            let job = mounted.mounts[0] + "/fio"
            try await shell("mkdir \(job)", environment: mounted.environment)
            let result = try await shell(
                "fio --name=seq --directory=\(job) --rw=write --bs=1M --size=64M --numjobs=1 --end_fsync=1 "
                    + "--output-format=terse --minimal && "
                    + "fio --name=seq --directory=\(job) --rw=read --bs=1M --size=64M --numjobs=1 "
                    + "--output-format=terse --minimal",
                environment: mounted.environment)
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output.split(separator: "\n").count == 2)
        }
    }
}
