#!/usr/bin/env python3
"""How long Pocket takes to notice and get around faults, measured on clusters of real processes
(`pocket up --no-mount` on free loopback ports, each in a temporary directory of its own):

dead      a storage server stopped (SIGSTOP): seconds until `pocket status --json` (polled every
          50 ms, a process each) shows it `dead`
active    the same server continued (SIGCONT): seconds until it shows `active` again
around    a job with two copies of each block, a 4 MiB object, one server holding copies stopped:
          a `pocket get` (bytes checked), and again once the controller calls the server dead
kill -9   a job with one copy, a 4 MiB object striped over both servers, one server killed:
          seconds until `pocket get` fails, and that it fails with an I/O error
TLS       a cluster serving only TLS: seconds until a plain `pocket status` is refused, and its error

Every figure is the median of --runs runs (min and max shown); each `pocket` command is a process
of its own, so its start-up is in every figure (the first row measures it). Every wait has a
deadline; a run that misses one, or sees the wrong behaviour, is reported as a failure.
"""
import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DEADLINE = 60.0  # seconds any one wait may take
POLL = 0.05
OBJECT = 4 << 20
CLEAN = ("POCKET_CONTROLLER", "POCKET_TOKEN", "POCKET_CLUSTER_KEY", "POCKET_TLS_CERT", "POCKET_TLS_KEY",
         "POCKET_TLS_CA")


ERRORS = {}  # the last error text seen, by row: what a user would read


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(line):
    print(line, file=sys.stderr, flush=True)


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Cluster:
    """One `pocket up --no-mount` and its servers, in a directory of its own under `work`."""
    live = []  # for clean-up on exit

    def __init__(self, pocket, work, storage_servers=2, tls=None):
        self.pocket = pocket
        self.dir = tempfile.mkdtemp(prefix="cluster-", dir=work)
        self.controller = f"127.0.0.1:{free_port()}"
        self.storage_servers = storage_servers
        self.env = {k: v for k, v in os.environ.items() if k not in CLEAN}
        self.env["POCKET_HOME"] = self.dir  # job tokens; the cluster key goes in --data-dir
        self.client_tls = ["--tls-ca", tls["ca"]] if tls else []
        self.stopped = set()
        self.children = {}
        args = [pocket, "up", "--no-mount", "--listen", self.controller, "--storage-servers", str(storage_servers),
                "--capacity", "1GiB", "--data-dir", os.path.join(self.dir, "data")]
        if tls:
            args += ["--tls-cert", tls["cert"], "--tls-key", tls["key"], "--tls-ca", tls["ca"]]
        self.up = subprocess.Popen(args, stdout=open(os.path.join(self.dir, "up.log"), "w"),
                                   stderr=subprocess.STDOUT, env=self.env)
        Cluster.live.append(self)
        try:
            self.wait_for(lambda s: sum(x["kind"] == "storage" and x["state"] == "active" for x in s["servers"])
                          == storage_servers, "the cluster to start")
            self.children = self.processes()
        except BaseException:
            self.stop()
            raise

    def run(self, *args, timeout=DEADLINE, tls=True):
        """A `pocket` command against this cluster: (return code, stdout, stderr, seconds)."""
        command = [self.pocket, *args, "--controller", self.controller] + (self.client_tls if tls else [])
        began = time.monotonic()
        try:
            out = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"`pocket {' '.join(args)}` did not return within {timeout:.0f} s")
        return out.returncode, out.stdout, out.stderr.strip(), time.monotonic() - began

    def must(self, *args):
        code, out, err, _ = self.run(*args)
        if code != 0:
            raise Failure(f"`pocket {' '.join(args)}` failed: {err[-500:]}")
        return out

    def status(self):
        code, out, _, _ = self.run("status", "--json", timeout=10)
        return json.loads(out) if code == 0 else None

    def wait_for(self, condition, what, since=None):
        """Polls `pocket status --json` every POLL s until `condition(status)`; returns the seconds
        from `since` (monotonic) to the reply that showed it."""
        since = since or time.monotonic()
        while time.monotonic() - since < DEADLINE:
            if self.up.poll() is not None:
                with open(os.path.join(self.dir, "up.log")) as f:  # removed with the cluster
                    raise Failure(f"pocket up exited while waiting for {what}: {f.read()[-500:].strip()}")
            status = self.status()
            if status and condition(status):
                return time.monotonic() - since
            time.sleep(POLL)
        raise Failure(f"no {what} within {DEADLINE:.0f} s")

    def processes(self):
        """{address: (role, pid)} of the servers `pocket up` started; each announces its address
        in its --ready-file."""
        found = {}
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) != self.up.pid:
                        continue
                with open(f"/proc/{entry}/cmdline") as f:
                    argv = f.read().split("\0")
                with open(argv[argv.index("--ready-file") + 1]) as f:
                    found[f.read().strip()] = (argv[1], int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def storage(self, status):
        """The storage servers of `status` with their pids, those holding most blocks first."""
        servers = [s for s in status["servers"] if s["kind"] == "storage"]
        servers.sort(key=lambda s: -s["block_count"])
        return [(s, self.children[s["address"]][1]) for s in servers]

    def shows(self, address, state):
        """A condition for wait_for: the server at `address` is in `state`."""
        return lambda status: any(s["address"] == address and s["state"] == state for s in status["servers"])

    def signal(self, pid, number):
        os.kill(pid, number)
        if number == signal.SIGSTOP:
            self.stopped.add(pid)
        elif number == signal.SIGCONT:
            self.stopped.discard(pid)

    def stop(self):
        if self not in Cluster.live:
            return
        Cluster.live.remove(self)
        if self.up.poll() is None:
            self.children = self.processes() or self.children
        for pid in list(self.stopped):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self.up.terminate()
        try:
            self.up.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            log(f"pocket up {self.up.pid} did not stop within {DEADLINE:.0f} s; killing it and its servers")
            self.up.kill()
            self.up.wait()
        for _, pid in self.children.values():  # none should be left; any that is, is ours
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def payload(work):
    path = os.path.join(work, "object")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(OBJECT))
    return path


def same(a, b):
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read() == y.read()


# MARK: measurements; each returns {row name: seconds} for one run


def dead_and_active(cluster, run):
    """SIGSTOP a storage server, time until dead; SIGCONT it, time until active."""
    server, pid = cluster.storage(cluster.status())[run % cluster.storage_servers]
    began = time.monotonic()
    cluster.signal(pid, signal.SIGSTOP)
    dead = cluster.wait_for(cluster.shows(server["address"], "dead"), "dead server", began)
    began = time.monotonic()
    cluster.signal(pid, signal.SIGCONT)
    active = cluster.wait_for(cluster.shows(server["address"], "active"), "active server", began)
    return {"dead": dead, "active": active}


def read_around(pocket, work, run):
    """Two copies of each block on three servers; one server holding copies stopped."""
    with Cluster(pocket, work, storage_servers=3) as cluster:
        cluster.must("job", "register", "copies", "--replication", "2")
        cluster.must("put", "copies", "object", payload(work))
        time.sleep(1.2)  # a heartbeat or two: block counts in the status
        server, pid = cluster.storage(cluster.status())[0]
        if server["block_count"] == 0:
            raise Failure("no storage server reports blocks after the put")
        code, _, err, seconds = cluster.run("get", "copies", "object", os.path.join(cluster.dir, "plain"))
        if code != 0 or not same(os.path.join(cluster.dir, "plain"), payload(work)):
            raise Failure(f"the replicated get failed with every server up: {err[-500:]}")
        result = {"get": seconds}
        began = time.monotonic()
        cluster.signal(pid, signal.SIGSTOP)
        for row in ("around", "around_dead"):
            if row == "around_dead":
                cluster.wait_for(cluster.shows(server["address"], "dead"), "dead server", began)
            target = os.path.join(cluster.dir, row)
            code, _, err, seconds = cluster.run("get", "copies", "object", target)
            if code != 0:
                raise Failure(f"the replicated get failed with a server stopped: {err[-500:]}")
            if not same(target, payload(work)):
                raise Failure("the replicated get returned different bytes")
            result[row] = seconds
        cluster.signal(pid, signal.SIGCONT)
        return result


def killed(pocket, work, run):
    """One copy of each block, striped over two servers; one server killed with SIGKILL."""
    with Cluster(pocket, work) as cluster:
        cluster.must("job", "register", "plain")
        cluster.must("put", "plain", "object", payload(work))
        time.sleep(1.2)
        holders = [(s, pid) for s, pid in cluster.storage(cluster.status()) if s["block_count"] > 0]
        if len(holders) < 2:
            raise Failure(f"the object is on {len(holders)} server(s), not striped over both")
        server, pid = holders[run % 2]
        os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        while alive(pid):
            if time.monotonic() - began > DEADLINE:
                raise Failure(f"storage server {pid} still alive {DEADLINE:.0f} s after SIGKILL")
            time.sleep(0.01)
        code, _, err, seconds = cluster.run("get", "plain", "object", os.path.join(cluster.dir, "back"))
        if code == 0:
            raise Failure("the get succeeded with a server of the object killed")
        if "I/O error" not in err:
            raise Failure(f"the get failed, but not with an I/O error: {err[-500:]}")
        ERRORS["kill"] = err.splitlines()[-1]
        return {"kill": seconds}


def certificates(work):
    """A throwaway CA and a server certificate for 127.0.0.1, as Tests/PocketTestSupport does."""
    d = os.path.join(work, "tls")
    os.makedirs(d, exist_ok=True)
    p = lambda name: os.path.join(d, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [["req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj",
              "/CN=Pocket faults CA", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
             ["req", "-new", *ec, "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=Pocket faults"],
             ["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-set_serial", "1",
              "-days", "2", "-extfile", p("server.ext"), "-out", p("server.pem")]]
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    for step in steps:
        out = subprocess.run(["openssl", *step], capture_output=True, text=True)
        if out.returncode != 0:
            raise Failure(f"openssl {' '.join(step)} failed: {out.stderr[-500:]}")
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key")}


def tls_refusal(cluster, run):
    """A `pocket status` without a CA to trust, against a cluster serving only TLS."""
    code, _, err, seconds = cluster.run("status", tls=False)
    if code == 0:
        raise Failure("a plain `pocket status` was answered by a TLS-only cluster")
    if "timed out" in err.lower() or "timeout" in err.lower():
        raise Failure(f"the plain client timed out instead of being refused: {err[-500:]}")
    ERRORS["tls"] = err.splitlines()[-1]
    return {"tls": seconds}


def plain_status(cluster, run):
    """A `pocket status` that is answered: what starting a `pocket` process costs."""
    code, _, err, seconds = cluster.run("status")
    if code != 0:
        raise Failure(f"`pocket status` failed: {err[-500:]}")
    return {"status": seconds}


# MARK: main

ROWS = [  # key, what, what the design expects
    ("status", "`pocket status` answered (process start-up)", "(reference: in every figure below)"),
    ("dead", "stopped storage server shown dead", "2.5–3.3 s (3 s after the last heartbeat, ≤ 0.5 s old)"),
    ("active", "continued server shown active again", "< 1 s (next heartbeat, every 0.5 s)"),
    ("get", "get 4 MiB, 2 copies, all servers up", "(reference: a get's start-up and transfer)"),
    ("around", "same, a server holding copies stopped", "≈ one client timeout (10 s), then other copies"),
    ("around_dead", "same, once the server is dead", "≈ a plain get (dead servers tried last)"),
    ("kill", "get failing after kill -9 (I/O error)", "≈ a plain get (connection refused), no hang"),
    ("tls", "plain status refused by TLS cluster", "≈ a plain status (refused at once), no timeout"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pocket", default=".build/release/pocket")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    pocket = os.path.abspath(args.pocket)
    work = tempfile.mkdtemp(prefix="pocket-faults-")

    def clean_up():
        for cluster in list(Cluster.live):
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    atexit.register(clean_up)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    values = {key: [] for key, _, _ in ROWS}
    failures = []
    began, load = time.time(), os.getloadavg()[0]

    def measure(label, step, *context):
        for run in range(args.runs):
            try:
                for key, seconds in step(*context, run).items():
                    values[key].append(seconds)
            except Failure as failure:
                failures.append(f"{label}, run {run + 1}: {failure}")
                log(f"  FAILED: {failure}")

    def on_cluster(label, steps, **options):
        try:
            with Cluster(pocket, work, **options) as cluster:
                log(f"{label} ...")
                for step in steps:
                    measure(label, step, cluster)
        except Failure as failure:
            failures.append(f"{label}: {failure}")
            log(f"  FAILED: {failure}")

    try:
        on_cluster("stop/continue", [plain_status, dead_and_active])
        log("read-around: a fresh 3-server cluster per run ...")
        measure("read-around", read_around, pocket, work)
        log("kill -9: a fresh cluster per run ...")
        measure("kill -9", killed, pocket, work)
        try:
            tls = certificates(work)
            on_cluster("TLS", [tls_refusal], tls=tls, storage_servers=1)
        except Failure as failure:
            failures.append(f"TLS: {failure}")
    finally:
        clean_up()

    if args.json:
        json.dump({"runs": args.runs, "pocket": pocket, "seconds": values, "errors": ERRORS, "failures": failures},
                  sys.stdout, indent=2)
        print()
    else:
        table = []
        for key, what, expected in ROWS:
            v = values[key]
            table.append((what, f"{statistics.median(v):.2f} s" if v else "FAILED",
                          f"[{min(v):.2f}–{max(v):.2f}]" if v else "", expected))
        widths = [max(len(row[i]) for row in table + [("what", "median", "range", "")]) for i in range(3)]
        print(f"{'what'.ljust(widths[0])}  {'median'.rjust(widths[1])}  {'range'.ljust(widths[2])}  expected")
        for row in table:
            print(f"{row[0].ljust(widths[0])}  {row[1].rjust(widths[1])}  {row[2].ljust(widths[2])}  {row[3]}")
        print()
        for key, error in ERRORS.items():
            print(f"{'get after kill -9' if key == 'kill' else 'plain status to TLS'}: {error}")
        for failure in failures:
            print(f"FAILED {failure}")
        print(f"{args.runs} runs per figure, median [min–max]; whole run {time.time() - began:.0f} s; load average "
              f"{load:.1f} on {os.cpu_count()} cores at the start; {pocket}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the clusters are stopped by then
        sys.exit("interrupted")
