#!/usr/bin/env python3
"""Load for a while against one cluster: --processes `pocket soak` processes of --clients tasks each
(1,000 in all by default) doing mixed put/get/delete for --duration seconds, every byte checked.
Samples the servers' RSS every 2 s and reports it start, middle and end, so a leak shows, with each
process's operations, errors and p99 latencies. Exits non-zero on any error.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(controller):
    total = 0
    out = subprocess.run(["pgrep", "-f", f"(storage|metadata) --listen .* --controller {controller}"],
                         capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
        except (OSError, StopIteration):
            pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pocket", default=".build/release/pocket")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--clients", type=int, default=250, help="per process")
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pocket-soak-")
    controller = f"127.0.0.1:{free_port()}"
    up = subprocess.Popen([args.pocket, "up", "--no-mount", "--listen", controller, "--storage-servers", "2",
                           "--capacity", "8GiB", "--data-dir", work],
                          stdout=open(os.path.join(work, "up.log"), "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if subprocess.run([args.pocket, "status", "--controller", controller], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        samples, stop = [], threading.Event()

        def sample():
            began = time.time()
            while not stop.is_set():
                samples.append((time.time() - began, rss(controller)))
                stop.wait(2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        print(f"{args.processes} × {args.clients} clients for {args.duration:g} s ...", flush=True)
        runs = [subprocess.Popen([args.pocket, "soak", "--clients", str(args.clients), "--duration",
                                  str(args.duration), "--seed", str(index + 1), "--json", "--controller", controller],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for index in range(args.processes)]
        reports = []
        for run in runs:
            out, err = run.communicate()
            reports.append(json.loads(out) if out.strip() else {"errors": 1, "error_samples": [err.strip()[-500:]]})
        stop.set()
        sampler.join()
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)

    errors = sum(r.get("errors", 0) for r in reports)
    operations = sum(r.get("operations", 0) for r in reports)
    print(f"operations: {operations} ({operations / args.duration:,.0f} ops/s), errors: {errors}")
    for index, r in enumerate(reports):
        if "put" in r:
            print(f"  process {index}: {r['operations']} ops, p99 put {r['put']['p99_us'] / 1000:.0f} ms, "
                  f"get {r['get']['p99_us'] / 1000:.0f} ms, delete {r['delete']['p99_us'] / 1000:.0f} ms; "
                  f"p50 put {r['put']['p50_us'] / 1000:.1f} ms, get {r['get']['p50_us'] / 1000:.1f} ms")
        for sample in r.get("error_samples", []):
            print(f"  error: {sample}")
    if samples:
        third = max(1, len(samples) // 3)
        avg = lambda part: sum(v for _, v in part) / len(part) / 2**20
        print(f"servers' RSS: first third {avg(samples[:third]):.0f} MiB, middle {avg(samples[third:-third] or samples):.0f} "
              f"MiB, last third {avg(samples[-third:]):.0f} MiB (max {max(v for _, v in samples) / 2**20:.0f} MiB)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
