"""Worker side: what each scenario does with a driver (see contenders.py), and the RESULT
lines that carry its figures back to the parent."""

from __future__ import annotations

import gc
import json
import sys
import threading
import time

from common import CONC_THREADS, QUEUED_EVENTS
from measure import maxrss_kb, rss_kb

# the driver's setup() mode of each scenario (rate scenarios without a listener: "none")
MODES = {"events_listener": "read", "events_ignored": "none", "queued": "stall", "idle": "idle"}


class Reporter:
    """Prints cumulative RESULT lines so that the parent keeps partial results on timeout."""

    def __init__(self, contender: str, scenario: str):
        self.r = {"contender": contender, "scenario": scenario, "ok": False, "error": None,
                  "rates": [], "n": None, "notes": []}

    def emit(self) -> None:
        self.r["maxrss_kb"] = maxrss_kb()
        sys.stdout.write("RESULT " + json.dumps(self.r) + "\n")
        sys.stdout.flush()


class RateStep:
    """One rate scenario: calibrate the size of a repetition, then run repetitions."""

    def __init__(self, sc: str, drv, args, r: dict):
        self.sc, self.drv, self.args, self.r = sc, drv, args, r
        self.short: list = []
        self.bad = self.mism = self.lost = 0

    def _once(self, size: int) -> float:
        gc.collect()
        if self.sc in ("events_listener", "events_ignored"):
            dt, got = self.drv.flood(size)
            if got is not None and got != size:
                self.short.append(got)
        elif self.sc == "ping_seq":
            dt, bad = self.drv.ping_seq(size)
            self.bad += bad
        else:
            dt, mism, lost = self.drv.ping_conc(size, CONC_THREADS)
            self.mism += mism
            self.lost += lost
        return dt

    def calibrate(self) -> None:
        a = self.args
        if self.sc.startswith("events"):
            size, lo, hi, unit = a.warm_events, a.min_events, a.max_events, 1
        elif self.sc == "ping_seq":
            size, lo, hi, unit = 100, 100, a.max_pings, 1
        else:
            size, lo, hi, unit = 10, 10, a.max_pings // CONC_THREADS, CONC_THREADS
        while True:  # grow until one repetition takes a fair share of the target time
            dt = self._once(size)
            if dt >= a.target * 0.25 or size >= hi:
                break
            size = min(hi, size * 4)
        self.size = int(max(lo, min(hi, size / dt * a.target)))
        self.unit = unit
        self.r["n"] = self.size * unit
        self.short, self.bad, self.mism, self.lost = [], 0, 0, 0  # calibration does not count

    def rep(self) -> None:
        dt = self._once(self.size)
        r = self.r
        r["rates"].append(self.size * self.unit / dt)
        if self.sc == "ping16":
            r["mismatches"], r["lost"] = self.mism, self.lost
            r["checked"] = self.size * self.unit * len(r["rates"])

    def finish(self) -> None:
        r = self.r
        if self.short:
            r["notes"].append("listener got %s of %d events" % (self.short, self.size))
        if self.sc == "ping_seq":
            r["bad"] = self.bad
            if self.bad:
                r["notes"].append("%d bad responses" % self.bad)


def run_rate(drv, args, rep: Reporter) -> None:
    """Calibrate, then run the repetitions: as many as the parent asks for, one per "rep"
    line on stdin (``--interactive``), else ``--reps`` of them; emit a RESULT after each."""
    step = RateStep(args.scenario, drv, args, rep.r)
    step.calibrate()
    if args.interactive:
        # the parent interleaves the repetitions of all contenders: wait for "rep"
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        while True:
            cmd = _read_command(drv)
            if cmd != "rep":
                break
            step.rep()
            rep.emit()
    else:
        for _ in range(args.reps):
            step.rep()
            rep.emit()
    step.finish()


def measure_idle(drv, r: dict, rss0: int, threads0: int) -> None:
    drv.idle(0.5)
    gc.collect()
    r["idle_rss_kb"] = rss_kb() - rss0
    r["idle_threads"] = threading.active_count() - threads0
    r["rss_before_kb"] = rss0


def measure_queued(drv, args, r: dict, rss0: int) -> None:
    target = QUEUED_EVENTS
    gc.collect()
    if args.worker == "naive":
        drv.flood(target)  # stores every parsed event in a list
        q = drv.queued()
    else:
        threading.Thread(target=_flood_quiet, args=(drv, target), daemon=True).start()
        deadline = time.monotonic() + args.queue_wait
        q, last, stable_since = None, -1, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            q = drv.queued()
            if q is not None and q >= target:
                break
            if q is None:  # unknown: wait until RSS stops growing
                cur = rss_kb()
                if cur != last:
                    last, stable_since = cur, time.monotonic()
                elif time.monotonic() - stable_since > 1.5:
                    break
        time.sleep(0.2)
    gc.collect()
    r["queued"] = q
    r["queued_rss_kb"] = rss_kb() - rss0
    r["rss_before_kb"] = rss0
    if q is not None and q < target:
        r["notes"].append("only %d of %d queued after %.0f s" % (q, target, args.queue_wait))
    if q is None:
        r["notes"].append("queue depth not observable; measured when RSS stopped growing")
    if hasattr(drv, "stats") and args.worker == "amiclient":
        r["stats"] = drv.stats()


def _read_command(drv, keepalive: float = 3.0) -> str:
    """Next command from the parent; ping the server while waiting, as an idle app would.

    (asterisk-ami's reader thread dies after `timeout` seconds without data.)
    """
    import select
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], keepalive)
        if ready:
            return sys.stdin.readline().strip() or "end"
        try:
            drv.ping_seq(1)
        except Exception:  # noqa: BLE001
            pass


def close_quiet(drv) -> None:
    try:
        drv.close()
    except Exception:  # noqa: BLE001
        pass


def _flood_quiet(drv, n: int) -> None:
    try:
        drv.flood(n)
    except Exception:  # noqa: BLE001
        pass
