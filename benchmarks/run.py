#!/usr/bin/env python3
"""amiclient benchmark suite: ``python benchmarks/run.py [--quick] [--write]``.

Starts ``benchmarks/loadgen.py`` (a fake Asterisk 22 manager) in its own
process on 127.0.0.1, then runs every (contender, scenario) pair in a fresh
worker subprocess of this same script (``--worker``), one after the other, so
that contenders cannot disturb each other and each RSS figure is that
contender's own.  Every scenario is the median of several repetitions.

Contenders (``contenders.py``):

* ``floor``: raw socket, single thread, no parsing (recv-only byte counter;
  blocking ping loop; 16 pipelined pings from one thread);
* ``naive``: single thread, ``recv`` + ``split(b"\\r\\n\\r\\n")`` + ``decode`` +
  ``dict(line.partition(": ")[::2] ...)`` per packet: the naive parser floor;
* ``amiclient``: this project, imported from the repository tree;
* ``pyst2``, ``asterisk-ami``, ``panoramisk``: other clients, when installed.
  They run from ``benchmarks/.venvs/<name>`` when that venv exists (create
  them with ``--setup``), else from this interpreter; a missing or broken one
  is reported as ``n/a`` with the reason.

The other modules of this directory: ``scenarios.py`` (what a worker does in
each scenario), ``measure.py`` (RSS, machine noise), ``report.py`` (the table
and RESULTS.md), ``common.py`` (constants and wire helpers).  This file keeps
the command line, the orchestration of the workers, the worker entry point and
the process clean-up.

Nothing here asserts on timing; see benchmarks/README.md for what each
number means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # the modules next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    HERE,
    LOADGEN,
    PIN_MODES,
    PING_SCENARIOS,
    PINNED_MODES,
    PIP_NAMES,
    PROTOTYPES,
    QUEUED_EVENTS,
    RATE_SCENARIOS,
    REPO,
    RESULTS,
    SCENARIOS,
    VENVS,
    Unsupported,
    pongserver,
    rkey,
    split_rkey,
)
from contenders import DRIVERS, dist_version  # noqa: E402
from measure import CpuWatch, attach_noise, rss_kb, wait_quiet  # noqa: E402
from report import fmt_rate, render  # noqa: E402
from scenarios import MODES, Reporter, close_quiet, measure_idle, measure_queued, run_rate  # noqa: E402

# ════════════════════════════════════════════════════════════════════════════
# worker side: entry point (run.py --worker NAME --scenario KEY ...)
# ════════════════════════════════════════════════════════════════════════════

def worker_main(args) -> None:
    """Run one (contender, scenario) and report it on stdout as RESULT lines; never returns."""
    rep = Reporter(args.worker, args.scenario)
    r = rep.r
    drv = None
    try:
        try:
            cls = DRIVERS[args.worker]
            gc.collect()
            drv = cls(args.port)  # imports the client
            r["version"] = getattr(drv, "version", None) or dist_version(args.worker)
            if r["version"] in (None, "?"):
                r["version"] = dist_version(args.worker)
        except Exception as e:  # noqa: BLE001
            r["error"] = "import failed: %s: %s" % (type(e).__name__, e)
            r["fatal"] = True
            return
        sc = args.scenario
        gc.collect()
        rss0 = rss_kb()
        threads0 = threading.active_count()
        try:
            drv.setup(MODES.get(sc, "none"))
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001
            r["error"] = "connect/login failed: %s: %s" % (type(e).__name__, e)
            r["fatal"] = args.worker == "amiclient" or isinstance(e, (ImportError, AttributeError, TypeError))
            return

        if sc in RATE_SCENARIOS:
            run_rate(drv, args, rep)
        elif sc == "idle":
            measure_idle(drv, r, rss0, threads0)
        elif sc == "queued":
            measure_queued(drv, args, r, rss0)
        r["ok"] = True
        if args.worker == "amiclient" and sc != "queued":
            r["stats"] = drv.stats()
    except Unsupported as e:
        r["error"] = "n/a: %s" % e
        r["unsupported"] = True
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        rep.emit()
        if drv is not None:
            try:
                drv.release()
            except Exception:  # noqa: BLE001
                pass
            # close in a daemon thread: a broken client must not hang the worker
            t = threading.Thread(target=close_quiet, args=(drv,), daemon=True)
            t.start()
            t.join(5)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# ════════════════════════════════════════════════════════════════════════════
# parent side
# ════════════════════════════════════════════════════════════════════════════

class Runner:
    def __init__(self, args):
        self.args = args
        self.loadgens: dict[str, subprocess.Popen] = {}  # one per CPU placement (PIN_MODES)
        self.ports: dict[str, int] = {}
        self.pong_ports: dict[str, int] = {}  # the ping scenarios' server (pongserver.c) per placement
        self.ping_server = "loadgen.py (Python)"
        self.live: set[WorkerProc] = set()
        self.port = None  # the headline load generator's port
        self.results: dict[tuple[str, str], dict] = {}
        self.fatal: dict[str, str] = {}
        self.python: dict[str, str] = {}
        self.t_start = time.monotonic()
        self.watch = None
        self.noise = None
        self.quiet_before = None

    # ── processes ──────────────────────────────────────────────────────────
    @property
    def cpus(self) -> tuple:
        """(load generator's CPUs, workers' CPUs) of the pinned runs: two disjoint sets, or
        (None, None) when this machine cannot pin (one CPU, no sched_setaffinity)."""
        return pin_cpus()

    @property
    def modes(self) -> list:
        """The CPU placements of this run, headline first."""
        return self.args.pinning

    @property
    def loadgen_pids(self) -> list:
        return [p.pid for p in self.loadgens.values()]

    @staticmethod
    def _pin(p: subprocess.Popen, cpus) -> None:
        if cpus:
            try:
                os.sched_setaffinity(p.pid, cpus)
            except OSError:
                pass

    def start_loadgens(self) -> None:
        """One load generator per CPU placement: the pinned one on the first CPU, the
        unpinned one wherever the scheduler puts it (both idle while the other serves)."""
        exe = self.pong_exe()
        for pin in self.modes:
            self.ports[pin] = self.start_loadgen(pin)
            if exe is not None:
                try:
                    self.pong_ports[pin] = self.start_loadgen(pin, [str(exe)], "pong-" + pin)
                    self.ping_server = "pongserver (C)"
                except RuntimeError as e:
                    print("pongserver: %s; the ping scenarios use loadgen.py" % e, file=sys.stderr)
                    self.pong_ports.clear()
                    exe = None
        if exe is None:
            self.pong_ports.clear()
            self.ping_server = "loadgen.py (Python)"
        self.port = self.ports[self.modes[0]]

    def pong_exe(self):
        """The compiled pongserver for the ping scenarios, or None (loadgen.py serves them)."""
        a = self.args
        if a.ping_server == "python" or (a.scenarios and not set(a.scenarios) & set(PING_SCENARIOS)):
            return None
        exe, why = pongserver()
        if exe is None:
            if a.ping_server == "c":
                raise SystemExit("--ping-server c: %s" % why)
            print("pongserver not built (%s): the ping scenarios use loadgen.py" % why, file=sys.stderr)
        return exe

    def start_loadgen(self, pin: str, server: list | None = None, name: str | None = None) -> int:
        """Start loadgen.py (or `server`, a command taking its options) for placement `pin`."""
        cmd = (server or [sys.executable, str(LOADGEN)]) + [
            "--host", "127.0.0.1", "--port", "0", "--events", str(max(self.args.max_events, QUEUED_EVENTS)),
            "--max-seconds", str(int(self.args.budget + 120))]
        lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        self.loadgens[name or pin] = lg
        if pin in PINNED_MODES:
            self._pin(lg, self.cpus[0])
        # read the two start-up lines (PORT, EVENTS) on a helper thread so a silent loadgen
        # cannot hang the run
        info: dict[str, str] = {}
        got = threading.Event()

        def reader():
            for _ in range(2):
                line = lg.stdout.readline()
                if not line:
                    break
                parts = line.split()
                for i in range(0, len(parts) - 1, 2):
                    info[parts[i]] = parts[i + 1]
            got.set()
        threading.Thread(target=reader, daemon=True).start()
        got.wait(60)
        if "PORT" not in info:
            raise RuntimeError("%s did not start" % (name or "loadgen"))
        if server is None:
            self.event_size = float(info.get("MEANSIZE", 0))
        return int(info["PORT"])

    def python_for(self, contender: str) -> str:
        if contender in PIP_NAMES:
            vpy = VENVS / contender / "bin" / "python"
            if vpy.exists() and not self.args.no_venvs:
                return str(vpy)
        return sys.executable

    def spawn(self, contender: str, scenario: str, interactive: bool, pin: str) -> WorkerProc:
        a = self.args
        port = self.pong_ports.get(pin, self.ports[pin]) if scenario in PING_SCENARIOS else self.ports[pin]
        cmd = [self.python_for(contender), "-W", "ignore", str(Path(__file__).resolve()),
               "--worker", contender, "--scenario", scenario, "--port", str(port),
               "--reps", str(a.reps), "--target", str(a.target), "--max-events", str(a.max_events),
               "--min-events", str(a.min_events), "--warm-events", str(a.warm_events),
               "--max-pings", str(a.max_pings), "--queue-wait", str(a.queue_wait)]
        if interactive:
            cmd.append("--interactive")
        env = dict(os.environ)
        if contender == "amiclient":
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        w = WorkerProc(contender, scenario, cmd, env, interactive)
        w.pin = pin
        self.live.add(w)
        if pin in PINNED_MODES:
            self._pin(w.p, self.cpus[1] if pin == "pinned" else self.cpus[0])
        return w

    def _finish(self, w: WorkerProc, timeout: float) -> dict:
        res = w.finish(timeout)
        self.live.discard(w)
        return res

    def run_worker(self, contender: str, scenario: str, pin: str) -> dict:
        """A single-shot scenario (idle, queued): one worker, run to completion."""
        watch = CpuWatch(self.loadgen_pids)
        w = self.spawn(contender, scenario, interactive=False, pin=pin)
        res = self._finish(w, self.args.worker_timeout)
        attach_noise(res, watch.stop())
        return res

    def run_rate_scenario(self, key: str, todo: list[tuple[str, str]]) -> None:
        """Start one worker per (contender, CPU placement), then interleave their repetitions
        round-robin, so that all of them share whatever else the machine is doing."""
        a = self.args
        watch = CpuWatch(self.loadgen_pids)
        workers: dict[tuple[str, str], WorkerProc] = {}
        for c, pin in todo:
            w = self.spawn(c, key, interactive=True, pin=pin)
            line = w.wait_for(("READY", "RESULT"), a.worker_timeout)
            if line == "READY":
                workers[(c, pin)] = w
            else:
                self.record(c, rkey(key, pin), self._finish(w, 10))
        rep_timeout = max(30.0, 30 * a.target)
        for r in range(a.reps):
            if time.monotonic() - self.t_start > a.budget:
                break
            names = list(workers)
            names = names[r % len(names):] + names[:r % len(names)] if names else names
            for cp in names:
                w = workers[cp]
                if w.dead:
                    continue
                w.send("rep")
                line = w.wait_for(("RESULT",), rep_timeout)
                if line is None:
                    w.timed_out = "a repetition took more than %ds" % rep_timeout
                    w.kill()
                elif (w.result or {}).get("error"):
                    w.dead = True
        results = {cp: self._finish(w, 20) for cp, w in workers.items()}
        noise = watch.stop()
        for (c, pin), res in results.items():
            attach_noise(res, noise)
            self.record(c, rkey(key, pin), res)

    def record(self, c: str, key: str, res: dict) -> None:
        if split_rkey(key)[0] in PING_SCENARIOS:
            res.setdefault("notes", []).append("server: %s" % self.ping_server)
        self.results[(c, key)] = res
        if res.get("fatal"):
            self.fatal[c] = res["error"]
        rates = res.get("rates") or []
        msg = ("%s" % fmt_rate(statistics.median(rates)) if rates else
               res.get("error") or ("ok" if res.get("ok") else "?"))
        res.setdefault("loadavg", os.getloadavg()[0])
        print("  %-24s %-13s %s  (load %.2f)" % (key, c, msg, res["loadavg"]), file=sys.stderr, flush=True)

    def cleanup(self) -> None:
        if self.watch is not None and self.noise is None:
            self.noise = self.watch.stop()
        for w in list(self.live):
            w.kill()
        self.live.clear()
        for lg in self.loadgens.values():
            if lg.poll() is None:
                _kill_group(lg)
        self.loadgens = {}

    # ── run ────────────────────────────────────────────────────────────────
    def run(self) -> None:
        a = self.args
        if a.wait_quiet:
            self.quiet_before = wait_quiet(a.wait_quiet)
        self.load_before = os.getloadavg()
        self.start_loadgens()
        self.watch = CpuWatch(self.loadgen_pids)
        print("loadgen %s%s, %.0f bytes/event; %d reps, %.1fs per rep%s; load average %.2f"
              % (", ".join("%s on 127.0.0.1:%d" % kv for kv in self.ports.items()),
                 "; pings: pongserver %s" % ", ".join("%s on 127.0.0.1:%d" % kv for kv in self.pong_ports.items())
                 if self.pong_ports else "; pings: loadgen.py", self.event_size,
                 a.reps, a.target, " (quick)" if a.quick else "", self.load_before[0]),
              file=sys.stderr, flush=True)
        for key, _title, contenders, _unit in SCENARIOS:
            if a.scenarios and key not in a.scenarios:
                continue
            # rate scenarios run in every placement; idle and queued (RSS, threads: no
            # timing) only in the headline one
            modes = self.modes if key in RATE_SCENARIOS else self.modes[:1]
            todo = []
            for pin in modes:
                for c in contenders:
                    if a.contenders and c not in a.contenders:
                        continue
                    if c in PROTOTYPES and not (a.contenders and c in a.contenders):
                        continue  # prototypes run only when named
                    if c in self.fatal:
                        self.results[(c, rkey(key, pin))] = {"ok": False, "error": self.fatal[c],
                                                             "rates": [], "notes": []}
                    elif time.monotonic() - self.t_start > a.budget:
                        self.results[(c, rkey(key, pin))] = {"ok": False, "error": "skipped: run budget spent",
                                                             "rates": [], "notes": []}
                    else:
                        todo.append((c, pin))
            if not todo:
                continue
            if key in RATE_SCENARIOS:
                self.run_rate_scenario(key, todo)
            else:
                for c, pin in todo:
                    if c in self.fatal:
                        continue
                    self.record(c, rkey(key, pin), self.run_worker(c, key, pin))
        self.load_after = os.getloadavg()


class WorkerProc:
    """One worker subprocess; its stdout lines are collected by a thread."""

    def __init__(self, contender: str, scenario: str, cmd: list, env: dict, interactive: bool):
        import queue
        self.contender, self.scenario = contender, scenario
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                  stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
                                  start_new_session=True, text=True, cwd=str(HERE))
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        self.result: dict | None = None
        self.dead = False
        self.pin = "unpinned"
        self.timed_out: str | None = None
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    @staticmethod
    def _pump(stream, q) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _pump_err(self) -> None:
        for line in self.p.stderr:
            self.err.append(line.rstrip("\n"))
            del self.err[:-20]

    def wait_for(self, prefixes: tuple, timeout: float) -> str | None:
        """Wait for a line starting with one of prefixes; RESULT lines update .result."""
        import queue
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.dead = True
                return None
            if line.startswith("RESULT "):
                try:
                    self.result = json.loads(line[7:])
                except ValueError:
                    continue
            for pre in prefixes:
                if line.startswith(pre):
                    return pre
            continue

    def send(self, cmd: str) -> None:
        try:
            self.p.stdin.write(cmd + "\n")
            self.p.stdin.flush()
        except (OSError, ValueError):
            self.dead = True

    def kill(self) -> None:
        if self.p.poll() is None:
            _kill_group(self.p)

    def finish(self, timeout: float) -> dict:
        """Ask an interactive worker to end, wait for its last RESULT, reap it."""
        if self.p.stdin is not None and not self.dead:
            self.send("end")
        if self.p.poll() is None and not self.dead:
            deadline = time.monotonic() + timeout
            while self.wait_for(("RESULT",), max(0.0, deadline - time.monotonic())) is not None:
                pass  # keep the last RESULT until EOF or the deadline
        if self.p.poll() is None:
            try:
                self.p.wait(max(0.1, timeout / 4))
            except subprocess.TimeoutExpired:
                if not self.timed_out:
                    self.timed_out = "no exit within %ds" % timeout
                self.kill()
        self.kill()
        while True:  # drain what is left
            try:
                line = self.lines.get_nowait()
            except Exception:  # noqa: BLE001
                break
            if line and line.startswith("RESULT "):
                try:
                    self.result = json.loads(line[7:])
                except ValueError:
                    pass
        res = self.result
        if res is None:
            tail = self.err[-1:] or ["no output"]
            res = {"contender": self.contender, "scenario": self.scenario, "ok": False, "rates": [],
                   "notes": [], "error": (("timeout: %s" % self.timed_out) if self.timed_out else
                                          "worker died (rc %s): %s" % (self.p.returncode, tail[0][:200]))}
        elif self.timed_out:
            res["ok"] = bool(res.get("rates"))
            if not res["ok"]:
                res["error"] = "timeout: %s" % self.timed_out
            res.setdefault("notes", []).append("stopped (%s); %d reps kept" % (self.timed_out, len(res.get("rates") or [])))
            res["error"] = res.get("error") if not res["ok"] else None
        res["seconds"] = time.monotonic() - self.t0
        if not res.get("ok") and not res.get("unsupported") and self.err:
            res["stderr_tail"] = self.err[-3:]
        return res


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(3)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(3)


# ════════════════════════════════════════════════════════════════════════════
# entry point
# ════════════════════════════════════════════════════════════════════════════

def setup_venvs() -> None:
    for name, pip_name in PIP_NAMES.items():
        d = VENVS / name
        if not (d / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        r = subprocess.run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", pip_name])
        print("%s: %s" % (name, "installed" if r.returncode == 0 else "pip failed (%d)" % r.returncode))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="amiclient benchmark suite")
    ap.add_argument("--quick", action="store_true", help="fewer and shorter repetitions (about 2-3 min)")
    ap.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    ap.add_argument("--setup", action="store_true",
                    help="create benchmarks/.venvs/{pyst2,asterisk-ami (python-ami),panoramisk} with pip and exit")
    ap.add_argument("--pinning", type=lambda s: s.split(","), default=None, metavar="MODES",
                    help="CPU placements to run, headline first: unpinned,pinned,same-cpu (default: all; "
                         "unpinned: the scheduler places everything, as users run; pinned: the "
                         "load generator on the first CPU, the client on the others; same-cpu: both "
                         "on the first CPU)")
    ap.add_argument("--no-pin", action="store_true", help="same as --pinning unpinned")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="first wait up to this long for other processes to go quiet")
    ap.add_argument("--no-venvs", action="store_true", help="run the other clients from this interpreter")
    ap.add_argument("--contenders", type=lambda s: s.split(","), default=None,
                    help="comma list, e.g. floor,naive,amiclient (also: proto-lf,proto-reader, run only when named)")
    ap.add_argument("--scenarios", type=lambda s: s.split(","), default=None,
                    help="comma list of: " + ",".join(k for k, *_ in SCENARIOS))
    ap.add_argument("--ping-server", choices=("auto", "c", "python"), default="auto",
                    help="the ping scenarios' server: c = pongserver.c (built once into benchmarks/.build/), "
                         "python = loadgen.py, auto (default) = c when it builds, else python")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--target", type=float, default=None, help="seconds per repetition")
    # worker-only
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--max-events", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--min-events", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--warm-events", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-pings", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--queue-wait", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--interactive", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.quick
    defaults = dict(reps=3 if q else 5, target=0.3 if q else 1.0, max_events=100_000 if q else 300_000,
                    min_events=2_000, warm_events=2_000, max_pings=100_000 if q else 400_000,
                    queue_wait=15.0 if q else 45.0)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.worker_timeout = 45 if q else 150
    if a.pinning is None:
        a.pinning = ["unpinned"] if a.no_pin else list(PIN_MODES)
    bad = [m for m in a.pinning if m not in PIN_MODES]
    if bad or not a.pinning:
        ap.error("--pinning: choose from %s" % ",".join(PIN_MODES))
    if pin_cpus()[0] is None and set(PINNED_MODES) & set(a.pinning):
        print("cannot pin on this machine: running unpinned only", file=sys.stderr)
        a.pinning = [m for m in a.pinning if m not in PINNED_MODES] or ["unpinned"]
    a.budget = (110 if q else 570) * (1 + 0.6 * (len(a.pinning) - 1))
    return a


def pin_cpus() -> tuple:
    """(load generator's CPUs, workers' CPUs) for pinned runs, or (None, None)."""
    try:
        avail = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return (None, None)
    if len(avail) < 2:
        return (None, None)
    return ({avail[0]}, set(avail[1:]))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    if args.setup:
        setup_venvs()
        return 0
    runner = Runner(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    t0 = time.monotonic()
    interrupted = False
    try:
        runner.run()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; reporting what ran", file=sys.stderr)
    finally:
        runner.cleanup()
    seconds = time.monotonic() - t0
    if not runner.results:
        return 1
    text = render(runner, seconds)
    print()
    print(text)
    if args.write and not interrupted:
        RESULTS.write_text(text)
        print("wrote %s" % RESULTS, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
