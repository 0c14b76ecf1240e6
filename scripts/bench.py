#!/usr/bin/env python3
"""Pocket against what users would pick instead, side by side on this machine, in one run.

P1/P2  1 KiB put/get: `pocket bench` vs `redis-benchmark` SET/GET (50 clients; one client for p50)
P3     64 MiB put/get vs one `iperf3` stream on loopback and vs Redis 1 MiB SET/GET; the puts
       replace 4 objects in turn, as redis-benchmark's SETs replace one key
P4     `fio` 1 MiB sequential write/read of 1 GiB on the FUSE mount vs the native client (and tmpfs);
       for reads also on a FUSE file system answering from memory (scripts/fuse-ceiling.c), and the
       bound that FUSE's and the native client's CPU per byte put on any mount of these cores
P5     a map-reduce shuffle through /pocket/<job> vs the same on tmpfs; again with the page cache
       dropped between map and reduce (as if reducers ran on other machines)
sweep  put/get throughput from 1 KiB to 64 MiB (CSV and SVG)
memory storage server bytes of RSS per stored byte; the FUSE daemon's peak RSS under fio

Every figure is the median of --runs runs (min and max shown); `pocket bench` checks every byte it
reads back. Writes bench-out/results.json, sizes.csv and sizes.svg.
"""
import argparse
import csv
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(args, **kwargs):
    out = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{out.stderr[-2000:]}")
    return out.stdout


def busy(measure):
    """Runs `measure`; returns its result, the cores the machine kept busy meanwhile (/proc/stat:
    all but idle and I/O wait) and the wall time."""
    def snapshot():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return sum(fields) - fields[3] - fields[4], sum(fields)
    busy0, all0 = snapshot()
    began = time.time()
    result = measure()
    wall = time.time() - began
    busy1, all1 = snapshot()
    return result, os.cpu_count() * (busy1 - busy0) / max(1, all1 - all0), wall


def cpu_per_operation(measure, server, operations):
    """Runs `measure` (a client run as a child process against `server`'s pid); returns its result
    and the CPU microseconds per operation of the client and of the server, each in user and
    kernel time: {"client_user": …, "client_system": …, "server_user": …, "server_system": …}."""
    def server_ticks():
        with open(f"/proc/{server}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])  # utime, stime
    children0, server0 = resource.getrusage(resource.RUSAGE_CHILDREN), server_ticks()
    result = measure()
    children1, server1 = resource.getrusage(resource.RUSAGE_CHILDREN), server_ticks()
    tick = 1e6 / os.sysconf("SC_CLK_TCK")
    return result, {"client_user": (children1.ru_utime - children0.ru_utime) * 1e6 / operations,
                    "client_system": (children1.ru_stime - children0.ru_stime) * 1e6 / operations,
                    "server_user": (server1[0] - server0[0]) * tick / operations,
                    "server_system": (server1[1] - server0[1]) * tick / operations}


def median_cpu(runs):
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


class Figure:
    """Several runs of one measurement: median, min and max."""

    def __init__(self, values):
        self.values = values

    @property
    def median(self):
        return statistics.median(self.values)

    def text(self, unit, scale=1.0, digits=0):
        f = lambda v: f"{v / scale:,.{digits}f}"
        return f"{f(self.median)} {unit} [{f(min(self.values))}–{f(max(self.values))}]"


class Bench:
    def __init__(self, args):
        self.args = args
        self.pocket = os.path.abspath(args.pocket)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="pocket-bench-", dir="/dev/shm")
        self.mount = tempfile.mkdtemp(prefix="pocket-bench-mnt-")
        self.controller = f"127.0.0.1:{free_port()}"
        self.redis_port = free_port()
        self.processes = []
        self.results = {"machine": self.machine(), "runs": args.runs}

    def machine(self):
        cpu = sh(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).strip()
        memory = sh(["sh", "-c", "grep MemTotal /proc/meminfo | awk '{print $2}'"]).strip()
        return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(memory) / 2**20, 1),
                "kernel": os.uname().release}

    # MARK: setup

    def start(self):
        up = [self.pocket, "up", "--listen", self.controller, "--storage-servers", "2", "--capacity", "6GiB",
              "--mount", self.mount, "--data-dir", os.path.join(self.work, "pocket")]
        self.up = subprocess.Popen(up, stdout=open(os.path.join(self.out, "pocket-up.log"), "w"),
                                   stderr=subprocess.STDOUT)
        for _ in range(300):
            if os.path.ismount(self.mount):
                break
            if self.up.poll() is not None:
                sys.exit(f"pocket up exited; see {self.out}/pocket-up.log")
            time.sleep(0.1)
        else:
            sys.exit("the mount did not appear")
        redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--save", "", "--appendonly",
                                  "no", "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
        self.processes.append(redis)
        self.redis_server = redis.pid
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)

    def stop(self):
        for process in self.processes:
            process.terminate()
        if hasattr(self, "up"):
            self.up.send_signal(signal.SIGINT)
            try:
                self.up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.up.kill()
        subprocess.run(["umount", "-l", self.mount], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.mount, ignore_errors=True)

    # MARK: tools

    def pocket_bench(self, op, size, count, concurrency, **extra):
        args = [self.pocket, "bench", "--op", op, "--size", str(size), "--count", str(count),
                "--concurrency", str(concurrency), "--json", "--controller", self.controller]
        for key, value in extra.items():
            args += [f"--{key}", str(value)]
        return json.loads(sh(args))

    def redis(self, test, size, clients, requests):
        out = sh(["redis-benchmark", "-p", str(self.redis_port), "-t", test, "-d", str(size), "-c", str(clients),
                  "-n", str(requests), "--csv"])
        rows = list(csv.DictReader(out.splitlines()))
        return {row["test"].lower(): row for row in rows}

    def repeat(self, measure):
        return [measure() for _ in range(self.args.runs)]

    # MARK: P1, P2

    def small_objects(self):
        n = self.args.small_count
        results = {}
        for op, test in (("put", "set"), ("get", "get")):
            pocket = self.repeat(lambda: self.pocket_bench(op, 1024, n, 50)["ops_per_s"])
            redis = self.repeat(lambda: float(self.redis(test, 1024, 50, n)[test]["rps"]))
            metadata = self.pids("metadata")[0]
            one = self.repeat(lambda: cpu_per_operation(
                lambda: self.pocket_bench(op, 1024, n // 5, 1)["p50_us"], metadata, n // 5))
            redis_one = self.repeat(lambda: cpu_per_operation(
                lambda: float(self.redis(test, 1024, 1, n // 5)[test]["p50_latency_ms"]) * 1000,
                self.redis_server, n // 5))
            results[op] = {"pocket_ops": Figure(pocket), "redis_ops": Figure(redis),
                           "pocket_p50_us": Figure([p50 for p50, _ in one]),
                           "redis_p50_us": Figure([p50 for p50, _ in redis_one]),
                           "pocket_cpu_us": median_cpu([cpu for _, cpu in one]),
                           "redis_cpu_us": median_cpu([cpu for _, cpu in redis_one])}
        return results

    # MARK: P3

    def large_objects(self):
        iperf = subprocess.Popen(["iperf3", "-s", "-p", str(port := free_port()), "-1"], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        stream = json.loads(sh(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "5", "-J"]))
        iperf.wait(timeout=10)
        iperf_bytes = stream["end"]["sum_received"]["bits_per_second"] / 8
        results = {"iperf3_bytes_per_s": iperf_bytes}
        for op, test in (("put", "set"), ("get", "get")):
            pocket = self.repeat(lambda: self.pocket_bench(op, 64 << 20, self.args.large_count, 1, keys=4)["bytes_per_s"])
            redis = self.repeat(lambda: float(self.redis(test, 1 << 20, 1, 1000)[test]["rps"]) * (1 << 20))
            results[op] = {"pocket": Figure(pocket), "redis": Figure(redis)}
        return results

    # MARK: P4

    def fio(self, directory, rw):
        out = sh(["fio", "--name=seq", f"--directory={directory}", f"--rw={rw}", "--bs=1M", "--size=1G",
                  "--ioengine=psync", "--end_fsync=1", "--output-format=json"])
        job = json.loads(out)["jobs"][0]
        return job["write" if rw == "write" else "read"]["bw_bytes"]

    def fuse(self):
        job = os.path.join(self.mount, "fio")
        os.mkdir(job)
        tmpfs = os.path.join(self.work, "fio")
        os.mkdir(tmpfs)
        results = {}
        for rw, op in (("write", "put"), ("read", "get")):
            mounted = []
            for _ in range(self.args.runs):
                if rw == "write":
                    for name in os.listdir(job):
                        os.remove(os.path.join(job, name))
                mounted.append(self.fio(job, rw))
            native = self.repeat(lambda: busy(lambda: self.native(rw)))
            memory = self.repeat(lambda: self.fio(tmpfs, rw))
            results[rw] = {"fuse": Figure(mounted), "native": Figure([rate for rate, _, _ in native]),
                           "tmpfs": Figure(memory)}
            # Core-seconds per byte of the native path, for the bound below.
            results[rw]["native_cpu"] = statistics.median(cores * wall / (1 << 30) for _, cores, wall in native)
        results["fuse_peak_rss"] = self.rss("mount", "VmHWM")
        shutil.rmtree(job)
        shutil.rmtree(tmpfs)
        results["ceiling"] = self.fuse_ceiling()
        return results

    def fuse_ceiling(self):
        """fio's sequential read on a FUSE file system that answers from memory at once
        (scripts/fuse-ceiling.c): what FUSE itself takes, in bytes/s and core-seconds per byte."""
        binary = os.path.join(self.work, "fuse-ceiling")
        compiler = shutil.which("cc") or shutil.which("clang")
        flags = sh(["pkg-config", "--cflags", "--libs", "fuse3"]).split()
        sh([compiler, "-O2", "-o", binary, os.path.join(HERE, "fuse-ceiling.c"), *flags])
        mount = tempfile.mkdtemp(prefix="pocket-bench-ceiling-")
        size = 4 << 30
        server = subprocess.Popen([binary, mount, str(size)])
        try:
            for _ in range(100):
                if os.path.ismount(mount):
                    break
                time.sleep(0.05)
            else:
                sys.exit("the FUSE ceiling file system did not mount")
            tune_read_ahead(mount)
            fio = ["fio", "--name=seq", f"--filename={mount}/data", "--rw=read", "--bs=1M", f"--size={size}",
                   "--ioengine=psync", "--output-format=json"]
            runs = self.repeat(lambda: busy(lambda: json.loads(sh(fio))["jobs"][0]["read"]["bw_bytes"]))
        finally:
            subprocess.run(["umount", mount], capture_output=True)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:  # it never mounted
                server.kill()
                server.wait()
            shutil.rmtree(mount, ignore_errors=True)
        return {"read": Figure([rate for rate, _, _ in runs]),
                "cpu": statistics.median(cores * wall / size for _, cores, wall in runs)}

    def native(self, rw):
        """The native client streaming the same 1 GiB: `pocket put` from a tmpfs file, `pocket get`
        to /dev/null (1 MiB chunks, as fio's)."""
        env = {**os.environ, "POCKET_HOME": self.work}
        if not getattr(self, "native_job", False):
            sh([self.pocket, "job", "register", "native", "--controller", self.controller], env=env)
            self.native_job = True
        source = self.payload(1 << 30)
        command = (["put", "native", "object", source] if rw == "write" else ["get", "native", "object", "/dev/null"])
        began = time.time()
        sh([self.pocket, *command, "--controller", self.controller], env=env)
        return (1 << 30) / (time.time() - began)

    # MARK: P5

    def shuffle(self):
        data = os.path.join(self.work, "shuffle-input")
        os.mkdir(data)
        sh([sys.executable, os.path.join(HERE, "shuffle.py"), "generate", data, "--mappers", "4",
            "--bytes", str(self.args.shuffle_bytes)])
        job = os.path.join(self.mount, "shuffle")
        os.mkdir(job)
        times = {}
        tmpfs = os.path.join(self.work, "shuffle")
        # "cold": the page cache is dropped between map and reduce, as if reducers ran on other
        # machines; otherwise reducers may read what this machine's mappers wrote from memory.
        for label, root, cold in (("tmpfs", tmpfs, False), ("pocket", job, False),
                                  ("tmpfs_cold", tmpfs, True), ("pocket_cold", job, True)):
            runs = []
            for _ in range(self.args.runs):
                target = os.path.join(root, "run")
                shutil.rmtree(target, ignore_errors=True)
                os.makedirs(target)
                out = sh([sys.executable, os.path.join(HERE, "shuffle.py"), "run", data, target, "--mappers", "4",
                          "--reducers", "4"] + (["--drop-caches"] if cold else []))
                runs.append(json.loads(out.splitlines()[0])["seconds"])
                shutil.rmtree(target)
            times[label] = Figure(runs)
        shutil.rmtree(data)
        return times

    # MARK: sweep

    def sweep(self):
        rows = []
        for size in [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]:
            count = max(20, min(20000, (512 << 20) // size))
            concurrency = 16 if size <= 1 << 20 else 4
            row = {"size": size, "count": count, "concurrency": concurrency}
            for op in ("put", "get"):
                result = self.pocket_bench(op, size, count, concurrency)
                row[f"{op}_bytes_per_s"] = result["bytes_per_s"]
                row[f"{op}_ops_per_s"] = result["ops_per_s"]
                row[f"{op}_p50_us"] = result["p50_us"]
            rows.append(row)
        with open(os.path.join(self.out, "sizes.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        with open(os.path.join(self.out, "sizes.svg"), "w") as f:
            f.write(sweep_svg(rows))
        return rows

    # MARK: memory

    def pids(self, role):
        pattern = (f"mount {self.mount} --controller {self.controller}" if role == "mount"
                   else f"{role} --listen .* --controller {self.controller}")
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def rss(self, role, field="VmRSS"):
        total = 0
        for pid in self.pids(role):
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1]) * 1024
        return total

    def storage_overhead(self):
        before = self.rss("storage")
        stored = 1 << 30
        sh([self.pocket, "job", "register", "memory", "--latency-sensitive", "--controller", self.controller],
           env={**os.environ, "POCKET_HOME": self.work})
        for index in range(16):
            sh([self.pocket, "put", "memory", f"o{index}", self.payload(stored // 16), "--controller", self.controller],
               env={**os.environ, "POCKET_HOME": self.work})
        after = self.rss("storage")
        sh([self.pocket, "job", "deregister", "memory", "--controller", self.controller],
           env={**os.environ, "POCKET_HOME": self.work})
        return {"stored_bytes": stored, "rss_growth_bytes": after - before,
                "rss_per_stored_byte": (after - before) / stored}

    def payload(self, size):
        path = os.path.join(self.work, f"payload-{size}")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                block = os.urandom(1 << 20)
                for index in range(size // len(block)):
                    f.write(block[index % 251:] + block[:index % 251])
        return path


def tune_read_ahead(mountpoint, kib=8192):
    """The read-ahead Pocket's mount sets on its backing device (FuseMount.tuneBackingDevice)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountpoint:
                with open(f"/sys/class/bdi/{fields[2]}/read_ahead_kb", "w") as bdi:
                    bdi.write(f"{kib}\n")
                return


def sweep_svg(rows):
    import math
    width, height, left, bottom, pad = 760, 380, 70, 50, 20
    sizes = [r["size"] for r in rows]
    top = max(max(r["put_bytes_per_s"], r["get_bytes_per_s"]) for r in rows)
    ceiling = 10 ** math.ceil(math.log10(top))
    floor = 10 ** math.floor(math.log10(min(min(r["put_bytes_per_s"], r["get_bytes_per_s"]) for r in rows)))
    x = lambda s: left + (width - left - pad) * (math.log2(s) - math.log2(sizes[0])) / (
        math.log2(sizes[-1]) - math.log2(sizes[0]))
    y = lambda v: pad + (height - bottom - pad) * (1 - (math.log10(v) - math.log10(floor)) / (
        math.log10(ceiling) - math.log10(floor)))
    label = lambda s: f"{s >> 20} MiB" if s >= 1 << 20 else f"{s >> 10} KiB"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="14">Pocket put and get throughput by object size (bytes/s, log scale)</text>']
    decade = floor
    while decade <= ceiling:
        parts.append(f'<line x1="{left}" x2="{width - pad}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="5" y="{y(decade) + 4:.1f}">{decade:.0e}</text>')
        decade *= 10
    for s in sizes:
        parts.append(f'<text x="{x(s) - 18:.1f}" y="{height - bottom + 18}">{label(s)}</text>')
    for key, color in (("put_bytes_per_s", "#1f77b4"), ("get_bytes_per_s", "#ff7f0e")):
        points = " ".join(f"{x(r['size']):.1f},{y(r[key]):.1f}" for r in rows)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        for r in rows:
            parts.append(f'<circle cx="{x(r["size"]):.1f}" cy="{y(r[key]):.1f}" r="3" fill="{color}"/>')
    parts.append(f'<text x="{width - 160}" y="{height - 10}" fill="#1f77b4">put</text>')
    parts.append(f'<text x="{width - 110}" y="{height - 10}" fill="#ff7f0e">get</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def ratio(a, b):
    return a / b if b else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pocket", default=".build/release/pocket")
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-count", type=int, default=100000)
    parser.add_argument("--large-count", type=int, default=16)
    parser.add_argument("--shuffle-bytes", type=int, default=1 << 30)
    args = parser.parse_args()
    bench = Bench(args)
    began = time.time()
    try:
        bench.start()
        print(f"Pocket {bench.controller}, mounted at {bench.mount}; Redis on {bench.redis_port}; "
              f"{args.runs} runs per figure (median [min–max])", flush=True)
        print("memory ...", flush=True)
        memory = bench.storage_overhead()  # first, while the storage servers are fresh
        print("P1/P2 ...", flush=True)
        small = bench.small_objects()
        print("P3 ...", flush=True)
        large = bench.large_objects()
        print("P4 ...", flush=True)
        fuse = bench.fuse()
        print("P5 ...", flush=True)
        shuffle = bench.shuffle()
        print("size sweep ...", flush=True)
        sweep = bench.sweep()
    finally:
        bench.stop()

    mib = 1 << 20
    table = []
    add = lambda *row: table.append(row)
    for op, redis in (("put", "SET"), ("get", "GET")):
        s = small[op]
        add(f"P1 1 KiB {op}, 50 clients", s["pocket_ops"].text("ops/s"), s["redis_ops"].text("ops/s") + f" (Redis {redis})",
            ratio(s["pocket_ops"].median, s["redis_ops"].median), "≥ 1.0")
    for op, redis in (("put", "SET"), ("get", "GET")):
        s = small[op]
        add(f"P2 1 KiB {op}, 1 client, p50", s["pocket_p50_us"].text("µs"), s["redis_p50_us"].text("µs") + f" (Redis {redis})",
            ratio(s["pocket_p50_us"].median, s["redis_p50_us"].median), "≤ 1.0")
    for op in ("put", "get"):
        s = small[op]
        cpu = lambda c: (f"{c['client_user']:.0f}+{c['client_system']:.0f} µs client, "
                         f"{c['server_user']:.0f}+{c['server_system']:.0f} server")
        add(f"   CPU per {op}, user+kernel", cpu(s["pocket_cpu_us"]), cpu(s["redis_cpu_us"]) + " (Redis)",
            ratio(sum(s["pocket_cpu_us"].values()), sum(s["redis_cpu_us"].values())), "(reference)")
    for op, redis in (("put", "SET"), ("get", "GET")):
        l = large[op]
        add(f"P3 64 MiB {op} vs iperf3", l["pocket"].text("MiB/s", mib), f"{large['iperf3_bytes_per_s'] / mib:,.0f} MiB/s (iperf3, 1 stream)",
            ratio(l["pocket"].median, large["iperf3_bytes_per_s"]), "≥ 0.8")
        add(f"P3 64 MiB {op} vs Redis 1 MiB", l["pocket"].text("MiB/s", mib), l["redis"].text("MiB/s", mib) + f" (Redis {redis})",
            ratio(l["pocket"].median, l["redis"].median), "≥ 1.2")
    for rw in ("write", "read"):
        f = fuse[rw]
        add(f"P4 fio 1 MiB {rw}, 1 GiB", f["fuse"].text("MiB/s", mib), f["native"].text("MiB/s", mib) + " (native client)",
            ratio(f["fuse"].median, f["native"].median), "≥ 0.7")
        add(f"   same on tmpfs", f["tmpfs"].text("MiB/s", mib), "", ratio(f["fuse"].median, f["tmpfs"].median), "(reference)")
    ceiling = fuse["ceiling"]
    add("   FUSE alone, from memory", ceiling["read"].text("MiB/s", mib), "(scripts/fuse-ceiling.c)",
        ratio(fuse["read"]["fuse"].median, ceiling["read"].median), "(reference)")
    # A mount that reads from storage does at least the work of both: FUSE's, and the native
    # client's fetch. With the machine's cores all busy, it cannot move bytes faster than this.
    bound = os.cpu_count() / (ceiling["cpu"] + fuse["read"]["native_cpu"])
    add(f"   bound: {os.cpu_count()} cores / CPU per byte", f"{bound / mib:,.0f} MiB/s",
        "(FUSE alone + native client)", ratio(bound, fuse["read"]["native"].median), "(bound ÷ native)")
    add(f"P5 shuffle {args.shuffle_bytes / 2**30:g} GiB, 4×4", shuffle["pocket"].text("s", digits=1),
        shuffle["tmpfs"].text("s", digits=1) + " (tmpfs)", ratio(shuffle["pocket"].median, shuffle["tmpfs"].median),
        "≤ 1.5")
    add("   page cache dropped after map", shuffle["pocket_cold"].text("s", digits=1),
        shuffle["tmpfs_cold"].text("s", digits=1) + " (tmpfs)",
        ratio(shuffle["pocket_cold"].median, shuffle["tmpfs_cold"].median), "(reference)")
    widths = [max(len(str(row[i])) for row in table) for i in range(3)]
    print()
    print(f"{'what'.ljust(widths[0])}  {'Pocket'.ljust(widths[1])}  {'reference'.ljust(widths[2])}  ratio  target")
    for row in table:
        print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2].ljust(widths[2])}  {row[3]:5.2f}  {row[4]}")
    print()
    print("size sweep (bytes/s):")
    for r in sweep:
        print(f"  {r['size']:>9} B  put {r['put_bytes_per_s'] / mib:9.1f} MiB/s ({r['put_ops_per_s']:9.0f} ops/s)"
              f"  get {r['get_bytes_per_s'] / mib:9.1f} MiB/s ({r['get_ops_per_s']:9.0f} ops/s)")
    print(f"\nstorage servers: {memory['rss_growth_bytes'] / mib:.0f} MiB of RSS for {memory['stored_bytes'] / mib:.0f} MiB "
          f"stored ({memory['rss_per_stored_byte']:.3f} bytes of RSS per stored byte)")
    print(f"FUSE daemon peak RSS during fio: {fuse['fuse_peak_rss'] / mib:.0f} MiB")
    print(f"\n{args.runs} runs per figure; whole run {time.time() - began:.0f} s; machine: {bench.results['machine']}")
    figures = lambda d: {k: (v.values if isinstance(v, Figure) else figures(v) if isinstance(v, dict) else v)
                         for k, v in d.items()}
    bench.results.update({"small": figures(small), "large": figures(large), "fuse": figures(fuse),
                          "shuffle": figures(shuffle), "sweep": sweep, "memory": memory,
                          "table": [list(row) for row in table]})
    with open(os.path.join(bench.out, "results.json"), "w") as f:
        json.dump(bench.results, f, indent=2)
    print(f"wrote {args.out}/results.json, sizes.csv, sizes.svg")


if __name__ == "__main__":
    main()
