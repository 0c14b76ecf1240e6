#!/usr/bin/env python3
"""A map-reduce shuffle with unmodified tools, for scripts/bench (P5).

generate DIR: M input files of text lines "KEY<TAB>VALUE" (16 hex digits, 80 characters).
run DATA TARGET: M mappers (awk) each split their input into R partition files under TARGET by the
key's first hex digit; then R reducers (cat | sort) read their partition from every mapper and
sort it into TARGET/out-R, with sort's temporary files in TARGET too. --drop-caches empties the
kernel's page cache between the two phases (untimed), as if the reducers ran elsewhere. Prints the shuffle's wall
time as JSON, then checks that the outputs hold every input line, sorted.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def generate(args):
    per_file = args.bytes // args.mappers
    for mapper in range(args.mappers):
        with open(os.path.join(args.dir, f"input-{mapper}"), "w") as f:
            written = 0
            while written < per_file:
                keys = os.urandom(8 * 4096).hex()
                chunk = "".join(f"{keys[i:i + 16]}\t{keys[i:i + 16] * 5}\n" for i in range(0, len(keys), 16))
                f.write(chunk)
                written += len(chunk)


def run(args):
    inputs = sorted(os.path.join(args.data, name) for name in os.listdir(args.data))
    began = time.time()
    mappers = []
    for index, path in enumerate(inputs):
        out = os.path.join(args.target, f"map-{index}")
        os.mkdir(out)
        program = ('{ p = index("0123456789abcdef", substr($0, 1, 1)) % R; '
                   'print > (dir "/part-" p) }')
        mappers.append(subprocess.Popen(["awk", "-v", f"R={args.reducers}", "-v", f"dir={out}", program, path]))
    if any(p.wait() != 0 for p in mappers):
        sys.exit("a mapper failed")
    mapped = time.time()
    if args.drop_caches:
        # As if the reducers ran on other machines: nothing the mappers wrote is in this kernel's
        # page cache (tmpfs keeps its pages: they are its only copy). Not timed.
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        began += time.time() - mapped
        mapped = time.time()
    reducers = []
    for r in range(args.reducers):
        scratch = os.path.join(args.target, f"tmp-{r}")
        os.mkdir(scratch)
        parts = " ".join(os.path.join(args.target, f"map-{m}", f"part-{r}") for m in range(len(inputs)))
        command = f"cat {parts} | LC_ALL=C sort -S 256M -T {scratch} > {os.path.join(args.target, f'out-{r}')}"
        reducers.append(subprocess.Popen(["sh", "-c", command]))
    if any(p.wait() != 0 for p in reducers):
        sys.exit("a reducer failed")
    elapsed = time.time() - began
    print(json.dumps({"seconds": elapsed, "map_seconds": mapped - began, "reduce_seconds": elapsed - (mapped - began)}),
          flush=True)
    lines = lambda paths: sum(int(subprocess.run(["wc", "-l", p], capture_output=True, text=True).stdout.split()[0])
                              for p in paths)
    outputs = [os.path.join(args.target, f"out-{r}") for r in range(args.reducers)]
    if lines(inputs) != lines(outputs):
        sys.exit("the outputs do not hold every input line")
    for path in outputs:
        if subprocess.run(["sort", "-c", path], env={**os.environ, "LC_ALL": "C"}).returncode != 0:
            sys.exit(f"{path} is not sorted")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    g = commands.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--mappers", type=int, default=4)
    g.add_argument("--bytes", type=int, default=1 << 30)
    r = commands.add_parser("run")
    r.add_argument("data")
    r.add_argument("target")
    r.add_argument("--mappers", type=int, default=4)
    r.add_argument("--reducers", type=int, default=4)
    r.add_argument("--drop-caches", action="store_true",
                   help="drop the kernel's page cache between map and reduce (root)")
    args = parser.parse_args()
    generate(args) if args.command == "generate" else run(args)


if __name__ == "__main__":
    main()
