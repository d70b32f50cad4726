"""Measurements that are not timings: RSS of a process, CPU used by the rest of the machine."""

from __future__ import annotations

import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NOISY_CORES = 0.15  # other processes using more than this are worth a note


def rss_kb() -> int:
    """Current resident set size of this process, in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def maxrss_kb() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _cpu_sample() -> tuple[int, int, int]:
    """(total, busy, steal) jiffies of the whole machine."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return (0, 0, 0)
    total = sum(v[:8])
    return total, total - v[3] - v[4], (v[7] if len(v) > 7 else 0)


def _proc_ticks(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, ValueError, IndexError):
        return 0


def _own_ticks() -> float:
    import resource
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return (ch.ru_utime + ch.ru_stime + me.ru_utime + me.ru_stime) * HZ


class CpuWatch:
    """CPU used by processes that are not this benchmark, while it ran (a noise indicator)."""

    def __init__(self, loadgen_pids):
        self.pids = list(loadgen_pids or ())
        self.start = self._now()

    def _now(self):
        t, busy, steal = _cpu_sample()
        return (time.monotonic(), busy, steal, _own_ticks() + sum(_proc_ticks(p) for p in self.pids))

    def stop(self) -> dict:
        t1, b1, s1, o1 = self._now()
        t0, b0, s0, o0 = self.start
        wall = max(1e-6, (t1 - t0) * HZ)
        return {"foreign_cores": max(0.0, (b1 - b0) - (o1 - o0)) / wall, "steal_cores": (s1 - s0) / wall}


def attach_noise(res: dict, noise: dict) -> None:
    """Add a CpuWatch result to a worker's result, with a note when the machine was busy."""
    res.update(noise)
    if noise.get("foreign_cores", 0) > NOISY_CORES:
        res.setdefault("notes", []).append("other processes used %.2f cores meanwhile" % noise["foreign_cores"])


def wait_quiet(max_wait: float, threshold: float = NOISY_CORES) -> float:
    """Wait (up to max_wait s) until other processes use < threshold of a core; return that load."""
    deadline = time.monotonic() + max_wait
    while True:
        t0, b0, _ = _cpu_sample()
        time.sleep(2.0)
        t1, b1, _ = _cpu_sample()
        load = (b1 - b0) / max(1, (t1 - t0)) * (os.cpu_count() or 1)
        if load < threshold or time.monotonic() >= deadline:
            return load
        print("machine busy (%.2f cores used by other processes); waiting" % load, file=sys.stderr, flush=True)
