"""Where a sequential action's time goes (issue 13): ``python benchmarks/prototypes/profile_seq.py``.

Starts the ping server unpinned (``benchmarks/pongserver.c``, built once, or
``benchmarks/loadgen.py``: ``--server c|python``, default c when it builds), then runs sequential Pings with the
raw blocking loop (the floor), amiclient (from this repository), and the
leader/follower prototype in both modes, interleaved round-robin.  For each it
reports the rate and, per Ping, the CPU time and context switches of every
thread of the process (from ``/proc/self/task/*/schedstat`` and ``status``),
plus the load generator's CPU per Ping.  Then it times amiclient's pure-Python
steps of one action without a socket.  Nothing is asserted.

Options: ``--pings N`` (per round, default 5000), ``--rounds R`` (default 5),
``--server c|python``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1]))

from common import LOADGEN, SECRET, USER, pongserver, raw_login  # noqa: E402


def task_stats(pid: str = "self") -> dict:
    """{tid: (cpu_ns, voluntary, involuntary)} of every thread of a process."""
    out = {}
    base = "/proc/%s/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                cpu = int(f.read().split()[0])
            v = nv = 0
            with open("%s/%s/status" % (base, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        v = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        nv = int(line.split()[1])
            out[int(tid)] = (cpu, v, nv)
        except (OSError, ValueError, IndexError):
            pass
    return out


def thread_names() -> dict:
    names = {t.native_id: t.name for t in threading.enumerate()}
    names[threading.main_thread().native_id] = "caller"
    return names


class Floor:
    name = "floor (raw blocking loop)"

    def __init__(self, port):
        self.s = raw_login(port)
        self.i = 0

    def run(self, n):
        s, buf = self.s, b""
        for _ in range(n):
            self.i += 1
            s.sendall(b"Action: Ping\r\nActionID: %d\r\n\r\n" % self.i)
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            _, _, buf = buf.partition(b"\r\n\r\n")

    def close(self):
        self.s.close()


class Ceiling(Floor):
    """One thread, no futures, no locks: serialize_action, sendall, recv, Framer.feed,
    parse_packet, ActionID check.  The most any design with amiclient's Python work on
    the response path can reach."""

    name = "ceiling: 1 thread + amiclient parsing"

    def __init__(self, port):
        from amiclient._protocol import Framer, parse_packet, serialize_action
        self.s = raw_login(port)
        self.framer = Framer(expect_banner=False)
        self.parse, self.serialize = parse_packet, serialize_action
        self.i = 0

    def run(self, n):
        s, feed, parse, serialize = self.s, self.framer.feed, self.parse, self.serialize
        for _ in range(n):
            self.i += 1
            aid = "c-%d" % self.i
            s.sendall(serialize("Ping", {}, aid))
            texts = []
            while not texts:
                texts = feed(s.recv(65536))
            r = parse(texts[0])
            if r.get("ActionID") != aid:
                raise RuntimeError("mismatch")


class Amiclient:
    name = "amiclient (this tree)"

    def __init__(self, port):
        from amiclient import AMIClient
        self.c = AMIClient("127.0.0.1", port, USER, SECRET, auth="plain", events=False, timeout=10.0)
        self.c.connect()

    def run(self, n):
        action = self.c.action
        for _ in range(n):
            action("Ping")

    def close(self):
        self.c.close()


class Proto:
    def __init__(self, port, lf):
        from prototypes.leader_follower import ProtoClient
        self.name = "prototype, %s" % ("leader/follower" if lf else "reader thread only")
        self.c = ProtoClient(raw_login(port), leader_follower=lf)
        for t in self.c.threads:
            t.name = "%s %s" % ("lf" if lf else "rt", t.name)

    def run(self, n):
        action = self.c.action
        for _ in range(n):
            action("Ping")

    def close(self):
        self.c.close()


def python_steps() -> list:
    """Microseconds of amiclient's pure-Python steps of one Ping, no socket, no threads."""
    import timeit

    from amiclient import _protocol, _tracker
    resp = b"Response: Success\r\nActionID: x-1\r\nPing: Pong\r\nTimestamp: 1795703784.607925\r\n\r\n"
    framer = _protocol.Framer(expect_banner=False)
    text = framer.feed(resp)[0]
    out = []

    def step(label, fn, n=20000):
        best = min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6
        out.append((label, best))

    step("serialize_action", lambda: _protocol.serialize_action("Ping", {}, "x-1"))
    step("Framer.feed (one response)", lambda: framer.feed(resp))
    step("parse_packet (response)", lambda: _protocol.parse_packet(text))

    tracker = _tracker.ActionTracker()

    def future_cycle():
        f = _tracker.ActionFuture("Ping", "x-1", 10.0)
        tracker.add(f)
        tracker.route([text])
        return f.result(10.0)
    step("ActionFuture + tracker.add + route + result", future_cycle)
    step("  of which ActionFuture()", lambda: _tracker.ActionFuture("Ping", "x-1", 10.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pings", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--server", choices=("c", "python"), default=None,
                    help="c: pongserver.c (the default when it builds), python: loadgen.py")
    a = ap.parse_args()
    exe, why = pongserver() if a.server != "python" else (None, "--server python")
    if exe is None and a.server == "c":
        raise SystemExit("pongserver: %s" % why)
    cmd = [str(exe)] if exe else [sys.executable, str(LOADGEN), "--events", "1000"]
    lg = subprocess.Popen(cmd + ["--port", "0", "--max-seconds", "600"], stdout=subprocess.PIPE, text=True,
                          start_new_session=True)
    try:
        port = int(lg.stdout.readline().split()[1])
        print("server: %s" % ("pongserver (C)" if exe else "loadgen.py (Python; %s)" % why))
        print("load average before: %.2f %.2f %.2f" % os.getloadavg())
        subjects = [Floor(port), Ceiling(port), Amiclient(port), Proto(port, False), Proto(port, True)]
        res = {s.name: [] for s in subjects}
        for s in subjects:
            s.run(500)  # warm up
        for r in range(a.rounds):
            order = subjects[r % len(subjects):] + subjects[:r % len(subjects)]
            for s in order:
                before, lg_before = task_stats(), task_stats(str(lg.pid))
                t0 = time.perf_counter()
                s.run(a.pings)
                dt = time.perf_counter() - t0
                after, lg_after = task_stats(), task_stats(str(lg.pid))
                names = thread_names()
                per = {}
                for tid, (c1, v1, n1) in after.items():
                    c0, v0, n0 = before.get(tid, (0, 0, 0))
                    name = names.get(tid, "tid %d" % tid)
                    if c1 - c0 > 0 or v1 - v0 > 0:
                        per[name] = ((c1 - c0) / a.pings / 1000, (v1 - v0) / a.pings, (n1 - n0) / a.pings)
                lg_cpu = sum(c1 - lg_before.get(t, (0,))[0] for t, (c1, _, _) in lg_after.items())
                res[s.name].append((a.pings / dt, per, lg_cpu / a.pings / 1000))
        print("load average after: %.2f %.2f %.2f" % os.getloadavg())
        floor = statistics.median(r for r, _, _ in res[subjects[0].name])
        best_floor = max(r for r, _, _ in res[subjects[0].name])
        print("\n%-36s %8s %6s %8s %6s  %s" % ("sequential Pings", "median/s", "floor", "best/s", "floor",
                                             "per Ping in the median round: CPU us, voluntary + "
                                             "involuntary context switches, by thread"))
        for s in subjects:
            runs = res[s.name]
            rate = statistics.median(r for r, _, _ in runs)
            best = max(r for r, _, _ in runs)
            mid = sorted(runs, key=lambda x: x[0])[len(runs) // 2]
            threads = "; ".join("%s %.1f us %.2f+%.2f cs" % (n, c, v, nv) for n, (c, v, nv) in sorted(mid[1].items()))
            print("%-36s %8.0f %5.2fx %8.0f %5.2fx  %s; server %.1f us"
                  % (s.name, rate, rate / floor, best, best / best_floor, threads, mid[2]))
            print("%36s rounds: %s" % ("", " ".join("%.0f" % r for r, _, _ in runs)))
        for s in subjects:
            s.close()
        print("\namiclient's pure-Python steps of one Ping (best of 5, one thread, no socket):")
        try:
            for label, us in python_steps():
                print("  %-40s %.2f us" % (label, us))
        except Exception as e:  # noqa: BLE001  (internals change: this is a measurement aid)
            print("  not measured: %s: %s" % (type(e).__name__, e))
    finally:
        lg.kill()
        lg.wait()


if __name__ == "__main__":
    main()
