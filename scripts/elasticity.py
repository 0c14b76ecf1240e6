#!/usr/bin/env python3
"""Runs a load that rises and falls against an autoscaling Pocket, then the same load against a
static cluster sized for the peak, and writes what happened: a CSV of servers and utilisation over
time, an SVG plot, the controller's scaling events, and the cost of each run.

Load: three jobs, each a `pocket bench` putting 1 MiB objects at a steady rate (--rate), starting
and stopping at different times. Every storage server declares --server-throughput, so the load
per server is (bytes in + out) / declared throughput, the same figure the autoscaler acts on.
"""
import argparse
import html
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

PRICE_PER_NODE_HOUR = 0.504  # the default DRAM node (r5.2xlarge), docs/rightsizing.md

# (name, start s, stop s, ops/s of 1 MiB)
JOBS = [("j1", 10, 100, 30), ("j2", 30, 80, 30), ("j3", 50, 70, 30)]
END = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pocket, controller):
    try:
        out = subprocess.run([pocket, "status", "--json", "--controller", controller],
                             capture_output=True, text=True, timeout=10)
        return json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def start_cluster(pocket, controller, directory, servers, autoscale, throughput):
    args = [pocket, "up", "--no-mount", "--listen", controller, "--storage-servers", str(servers),
            "--capacity", "2GiB", "--server-throughput", throughput, "--data-dir", directory]
    if autoscale:
        args += ["--autoscale", "--max-storage-servers", "6"]
    log = open(os.path.join(directory + ".log"), "w")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        if status(pocket, controller):
            return process
        time.sleep(0.1)
    process.kill()
    sys.exit(f"pocket up did not start; see {directory}.log")


def run(pocket, label, out, servers, autoscale, throughput, scale):
    controller = f"127.0.0.1:{free_port()}"
    directory = os.path.join(out, f"run-{label}")
    os.makedirs(directory, exist_ok=True)
    cluster = start_cluster(pocket, controller, directory, servers, autoscale, throughput)
    samples, results, stop = [], {}, threading.Event()
    t0 = time.time()

    def sample():
        while not stop.is_set():
            s = status(pocket, controller)
            if s:
                storage = [x for x in s["servers"] if x["kind"] == "storage"]
                active = [x for x in storage if x["state"] == "active"]
                declared = sum(x["throughput_bytes_per_s"] for x in active) or 1
                # Storage servers report bytes in and out separately; the autoscaler uses both.
                wire = sum(x.get("bytes_in_per_s", 0) + x.get("bytes_out_per_s", 0) for x in active)
                samples.append((time.time() - t0, len(active), len(storage) - len(active), wire / declared))
            stop.wait(0.5)

    def job(name, begin, end, rate):
        time.sleep(max(0, begin * scale - (time.time() - t0)))
        out = subprocess.run(
            [pocket, "bench", "--op", "put", "--size", "1MiB", "--count", "100", "--concurrency", "4",
             "--rate", str(rate), "--duration", str((end - begin) * scale), "--json",
             "--latency-sensitive", "--throughput", f"{rate}MiB/s", "--capacity", "256MiB",
             "--controller", controller], capture_output=True, text=True)
        results[name] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr.strip()}

    threads = [threading.Thread(target=sample)] + [threading.Thread(target=job, args=j) for j in JOBS]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    time.sleep(max(0, END * scale - (time.time() - t0)))
    stop.set()
    threads[0].join()
    events = subprocess.run([pocket, "status", "--events", "--json", "--controller", controller],
                            capture_output=True, text=True).stdout
    cluster.send_signal(signal.SIGINT)
    cluster.wait(timeout=30)
    return samples, results, json.loads(events or "[]"), t0


def server_seconds(samples):
    total = 0.0
    for (t, active, draining, _), (t_next, *_rest) in zip(samples, samples[1:]):
        total += (active + draining) * (t_next - t)
    return total


def svg(samples, events, t0, path, lower=0.6, upper=0.8):
    width, height, left, pad = 900, 420, 60, 30
    span = max(s[0] for s in samples) or 1
    top_h, bottom_h = 150, 150
    x = lambda t: left + (width - left - pad) * t / span
    peak = max(s[1] + s[2] for s in samples) or 1
    ys = lambda n: pad + top_h - top_h * n / (peak + 1)
    yu = lambda u: pad * 2 + top_h + bottom_h - bottom_h * min(u, 2) / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18">Storage servers (active, and active + draining) over time</text>']
    for series, color in ((lambda s: s[1] + s[2], "#aec7e8"), (lambda s: s[1], "#1f77b4")):
        points = []
        for (t, *_), (t_next, *_r), sample in zip(samples, samples[1:] + [samples[-1]], samples):
            points += [f"{x(t):.1f},{ys(series(sample)):.1f}", f"{x(t_next):.1f},{ys(series(sample)):.1f}"]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>')
    for n in range(peak + 1):
        parts.append(f'<text x="{left - 20}" y="{ys(n) + 4:.1f}">{n}</text>')
    parts.append(f'<text x="{left}" y="{pad * 2 + top_h - 8}">Network utilisation of active servers '
                 f'(bytes in + out / declared), thresholds {int(lower * 100)}% and {int(upper * 100)}%</text>')
    for level in (lower, upper):
        parts.append(f'<line x1="{left}" x2="{width - pad}" y1="{yu(level):.1f}" y2="{yu(level):.1f}" '
                     'stroke="#d62728" stroke-dasharray="4 3"/>')
    for u in (0, 0.5, 1.0, 1.5, 2.0):
        parts.append(f'<text x="{left - 40}" y="{yu(u) + 4:.1f}">{int(u * 100)}%</text>')
    points = " ".join(f"{x(t):.1f},{yu(u):.1f}" for t, _, _, u in samples)
    parts.append(f'<polyline fill="none" stroke="#2ca02c" stroke-width="1.5" points="{points}"/>')
    for event in events:
        t = event["time_ms"] / 1000 - t0
        if 0 <= t <= span:
            color = {"launch": "#2ca02c", "drain": "#ff7f0e", "release": "#7f7f7f"}.get(event["action"], "#000")
            parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{pad}" y2="{pad + top_h}" '
                         f'stroke="{color}" stroke-dasharray="2 2"><title>{event["action"]}: '
                         f'{html.escape(event["reason"])}</title></line>')
    parts.append(f'<text x="{width / 2 - 40}" y="{height - 5}">seconds</text>')
    for t in range(0, int(span) + 1, 10):
        parts.append(f'<text x="{x(t) - 6:.1f}" y="{height - 20}">{t}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pocket", default=".build/release/pocket")
    parser.add_argument("--out", default="elasticity-out")
    parser.add_argument("--throughput", default="50MB/s", help="what every storage server declares")
    parser.add_argument("--scale", type=float, default=1.0, help="stretch (>1) or shrink (<1) the timeline")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    print(f"elastic run ({END * args.scale:.0f} s): 1 server to start, autoscaling up to 6 ...", flush=True)
    samples, results, events, t0 = run(args.pocket, "elastic", args.out, 1, True, args.throughput, args.scale)
    peak = max(s[1] + s[2] for s in samples)
    print(f"static run ({END * args.scale:.0f} s): {peak} servers, sized for the elastic run's peak ...", flush=True)
    static_samples, static_results, _, _ = run(args.pocket, "static", args.out, peak, False, args.throughput,
                                               args.scale)

    with open(os.path.join(args.out, "elasticity.csv"), "w") as f:
        f.write("seconds,active_servers,draining_servers,network_utilisation\n")
        for t, active, draining, u in samples:
            f.write(f"{t:.2f},{active},{draining},{u:.4f}\n")
    with open(os.path.join(args.out, "events.json"), "w") as f:
        json.dump(events, f, indent=2)
    svg(samples, events, t0, os.path.join(args.out, "elasticity.svg"))

    elastic = server_seconds(samples)
    static = server_seconds(static_samples)
    cost = lambda seconds: seconds * PRICE_PER_NODE_HOUR / 3600
    print(f"\nscaling decisions: {len(events)}")
    for event in events:
        print(f"  {event['time_ms'] / 1000 - t0:6.1f} s  {event['action']:<10} {event['kind']}/{event['tier']} "
              f"×{event['count']} → {event['servers']} servers  ({event['reason']})")
    print(f"\n{'job':<4} {'elastic ops/s':>14} {'static ops/s':>13} {'elastic p99 ms':>15} {'static p99 ms':>14}")
    for name, *_ in JOBS:
        e, s = results.get(name, {}), static_results.get(name, {})
        print(f"{name:<4} {e.get('ops_per_s', 0):14.1f} {s.get('ops_per_s', 0):13.1f} "
              f"{e.get('p99_us', 0) / 1000:15.1f} {s.get('p99_us', 0) / 1000:14.1f}"
              + (f"  elastic error: {e['error']}" if "error" in e else "")
              + (f"  static error: {s['error']}" if "error" in s else ""))
    print(f"\nserver-seconds: elastic {elastic:.0f}, static {static:.0f} ({peak} servers)")
    print(f"cost at ${PRICE_PER_NODE_HOUR}/node-hour: elastic ${cost(elastic):.4f}, static ${cost(static):.4f}, "
          f"saved {100 * (1 - elastic / static):.0f}%")
    print(f"\nwrote {args.out}/elasticity.csv, elasticity.svg, events.json")


if __name__ == "__main__":
    main()
