"""Parent side: the results table, the targets list and the text of RESULTS.md.

Everything here reads a finished ``Runner`` (run.py): ``runner.results`` maps
(contender, scenario) to the worker's last RESULT, plus the run's arguments, noise
figures and CPU pinning.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess

from common import CLIENTS, HERE, QUEUED_EVENTS, RATE_SCENARIOS, REPO, SCENARIOS, rkey, split_rkey

LABELS = {
    ("floor", "events_listener"): "floor: raw recv, no parsing",
    ("floor", "events_ignored"): "floor: raw recv, no parsing",
    ("naive", "events_listener"): "naive split/partition parser",
    ("naive", "events_ignored"): "naive split/partition parser",
    ("naive", "queued"): "naive parser, 100k dicts in a list",
    ("floor", "ping_seq"): "floor: raw blocking ping loop",
    ("floor", "ping16"): "floor: raw socket, 16 pipelined, 1 thread",
    ("panoramisk", "ping16"): "panoramisk (16 coroutines)",
    ("ceiling", "ping_seq"): "ceiling: 1 thread + amiclient's parsing",
    ("proto-lf", "ping_seq"): "prototype: leader/follower reads",
    ("proto-lf", "ping16"): "prototype: leader/follower reads",
    ("proto-reader", "ping_seq"): "prototype: reader thread only",
    ("proto-reader", "ping16"): "prototype: reader thread only",
}
# asterisk-ami on PyPI is the python-ami project (github ettoreleandrotognoli/python-ami)
AKA = {"asterisk-ami": "asterisk-ami (python-ami)"}


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def _mb(kb) -> str:
    return "%.1f MB" % (kb / 1024.0)


def _ratio(a, b) -> str:
    if not a or not b:
        return "—"
    return "%.2fx" % (a / b)


def _median(res) -> float | None:
    if res and res.get("rates"):
        return statistics.median(res["rates"])
    return None


def _spread(res) -> str:
    rates = res.get("rates") or []
    if len(rates) < 2:
        return ""
    med = statistics.median(rates)
    return "±%.0f%%" % (100.0 * max(abs(max(rates) - med), abs(med - min(rates))) / med)


def build_report(runner) -> tuple[str, list[tuple[str, str, str, str]]]:
    R = runner.results
    rows = []
    header = "| scenario | CPUs | contender | result | vs baseline | vs fastest other client | notes |"
    rows.append(header)
    rows.append("|---|---|---|---:|---:|---:|---|")

    def label(c, key):
        if (c, split_rkey(key)[0]) in LABELS:
            return LABELS[(c, split_rkey(key)[0])]
        res = R.get((c, key)) or {}
        v = res.get("version")
        name = AKA.get(c, c)
        return "%s %s" % (name, v) if v and v not in ("stdlib", "?") else name

    def row(title, c, key, result, note, vs_base="—", vs_other="—"):
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            title, split_rkey(key)[1], label(c, key), result, vs_base, vs_other, note))

    for sc, title, contenders, unit in SCENARIOS:
        for pin in runner.modes:  # one block per CPU placement, headline first
            key = rkey(sc, pin)
            present = [c for c in contenders if (c, key) in R]
            if not present:
                continue
            if sc in RATE_SCENARIOS:
                base_key = ("naive", key) if key.startswith("events") else ("floor", rkey("ping_seq", pin))
                base = _median(R.get(base_key))
                base_name = "naive" if key.startswith("events") else "raw ping loop"
                meds = {c: _median(R.get((c, key))) for c in present}
                for c in present:
                    res = R[(c, key)]
                    m = meds[c]
                    if m is None:
                        row(title, c, key, "n/a", _err(res))
                        continue
                    others = [meds[o] for o in CLIENTS if o != c and o in meds and meds[o]]
                    vs_other = _ratio(m, max(others)) if (c in CLIENTS and others) else "—"
                    is_base = (c, key) == base_key
                    vs_base = _ratio(m, base) if (base and not is_base) else ("baseline" if is_base else "—")
                    if base_name and vs_base not in ("—", "baseline"):
                        vs_base += " " + ("naive" if key.startswith("events") else "raw")
                    row(title, c, key, "%s %s" % (fmt_rate(m), unit), _rate_note(key, res), vs_base, vs_other)
            else:
                for c in present:
                    res = R[(c, key)]
                    if not res.get("ok"):
                        row(title, c, key, "n/a", _err(res))
                    elif sc == "idle":
                        row(title, c, key, "%s, %+d threads" % (_mb(res["idle_rss_kb"]), res["idle_threads"]),
                            "RSS after connect+login minus RSS before creating the client")
                    else:
                        row(title, c, key, *_queued_cells(res))
    # peak RSS per contender (max ru_maxrss over its rate workers)
    for c in ("floor", "naive") + CLIENTS:
        peaks = [res.get("maxrss_kb") for (c2, k), res in R.items()
                 if c2 == c and split_rkey(k)[0] in RATE_SCENARIOS and res.get("ok") and res.get("maxrss_kb")]
        if peaks:
            rows.append("| peak RSS (ru_maxrss, rate scenarios) | all | %s | %s | — | — | worker process, interpreter included |"
                        % (c if c not in ("floor", "naive") else c + " baseline", _mb(max(peaks))))
    table = "\n".join(rows)
    return table, targets(runner)


def _rate_note(key: str, res: dict) -> str:
    key = split_rkey(key)[0]
    notes = list(res.get("notes") or [])
    if res.get("loadavg") is not None:
        notes.append("load avg %.1f" % res["loadavg"])
    if res.get("n"):
        notes.insert(0, "n=%s" % "{:,}".format(res["n"]))
    sp = _spread(res)
    if sp:
        notes.insert(1 if res.get("n") else 0, "spread %s" % sp)
    note = ", ".join(notes)
    if key == "ping16" and "mismatches" in res:
        note = ("**%d mismatched**, %d lost of %s checked; " % (
            res["mismatches"], res.get("lost", 0), "{:,}".format(res.get("checked", 0)))
            if (res["mismatches"] or res.get("lost")) else
            "0 mismatched of %s; " % "{:,}".format(res.get("checked", 0))) + note
    return note


def _queued_cells(res: dict) -> tuple[str, str]:
    q = res.get("queued")
    shown = _mb(res["queued_rss_kb"])
    if q and q < QUEUED_EVENTS:
        shown += " at %s queued (≈ %s per 100k, extrapolated)" % (
            f"{q:,}", _mb(res["queued_rss_kb"] * QUEUED_EVENTS / q))
    return shown, ", ".join(["RSS growth from before connect; %s queued" % (
        f"{q:,}" if q is not None else "?")] + list(res.get("notes") or []))


def _err(res) -> str:
    e = (res or {}).get("error") or "no result"
    return e.replace("|", "/").replace("\n", " ")[:240]


def targets(runner) -> list[tuple[str, str, str, str]]:
    """The issue's goals, judged on every CPU placement of the run (the headline first)."""
    R = runner.results
    out = []
    for pin in runner.modes:
        out += _rate_targets(R, pin)
    pin = runner.modes[0]
    r = R.get(("amiclient", rkey("idle", pin))) or {}
    if r.get("ok"):
        ok = r["idle_rss_kb"] < 2048 and r["idle_threads"] <= 2
        out.append(("idle connected client < 2 MB RSS and two threads",
                    "%s, %+d threads" % (_mb(r["idle_rss_kb"]), r["idle_threads"]), "met" if ok else "NOT met", ""))
    else:
        out.append(("idle connected client < 2 MB RSS and two threads", "n/a", "not measured", ""))
    r = R.get(("amiclient", rkey("queued", pin))) or {}
    if r.get("ok"):
        ok = r["queued_rss_kb"] < 150 * 1024 and (r.get("queued") or 0) >= QUEUED_EVENTS
        out.append(("100k queued events cost < 150 MB", _mb(r["queued_rss_kb"]),
                    "met" if ok else "NOT met",
                    "" if (r.get("queued") or 0) >= QUEUED_EVENTS else "queue depth %s" % r.get("queued")))
    else:
        out.append(("100k queued events cost < 150 MB", "n/a", "not measured", ""))
    return out


def _rate_targets(R, pin: str) -> list[tuple[str, str, str, str]]:
    """The issue's rate goals, judged on CPU placement `pin`."""
    tag = " [%s]" % pin

    def med(c, k):
        return _median(R.get((c, rkey(k, pin))))

    out = []
    a = med("amiclient", "ping_seq")
    f = med("floor", "ping_seq")
    out.append(("sequential pings/s >= 0.8x the raw blocking ping loop" + tag, _ratio(a, f), *_verdict(a, f, 0.8)))
    p = med("asterisk-ami", "ping_seq")
    out.append(("sequential pings/s vs python-ami (report)" + tag, _ratio(a, p), "report", ""))
    a = med("amiclient", "ping16")
    p = med("asterisk-ami", "ping16")
    out.append(("16-thread pings/s >= 2x python-ami" + tag, _ratio(a, p), *_verdict(a, p, 2.0)))
    p = med("panoramisk", "ping16")
    out.append(("16-thread pings/s >= 1.5x panoramisk" + tag, _ratio(a, p), *_verdict(a, p, 1.5)))
    a = med("amiclient", "events_listener")
    naive = med("naive", "events_listener")
    out.append(("events/s to a listener >= 1.0x naive parser" + tag, _ratio(a, naive), *_verdict(a, naive, 1.0)))
    p = med("asterisk-ami", "events_listener")
    out.append(("events/s to a listener >= 2x python-ami" + tag, _ratio(a, p), *_verdict(a, p, 2.0)))
    r = R.get(("amiclient", rkey("ping16", pin))) or {}
    if "mismatches" in r:
        bad = r["mismatches"] + r.get("lost", 0)
        out.append(("16-thread pings: zero mismatches" + tag, "%d of %s" % (bad, "{:,}".format(r.get("checked", 0))),
                    "met" if bad == 0 else "NOT met", ""))
    else:
        out.append(("16-thread pings: zero mismatches" + tag, "n/a", "not measured", ""))
    return out


def _verdict(a, b, need) -> tuple[str, str]:
    if not a or not b:
        return "not measured", ""
    return ("met" if a / b >= need else "NOT met"), ""


def machine_info(runner) -> list[str]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
                break
    except OSError:
        pass
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "amiclient"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        head += " (amiclient/ has uncommitted changes)" if dirty else ""
    except Exception:  # noqa: BLE001
        head = "?"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    versions = []
    for c in CLIENTS:
        for k in ("events_listener", "ping_seq", "idle"):
            v = (runner.results.get((c, rkey(k, runner.modes[0]))) or {}).get("version")
            if v:
                versions.append("%s %s" % (AKA.get(c, c), v))
                break
    return [
        "- date: %s" % _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "- CPU: %s, %d cores (os.cpu_count %s), %s RAM" % (cpu, cores, os.cpu_count(), mem),
        "- OS: %s %s" % (platform.system(), platform.release()),
        "- Python: %s (%s)" % (platform.python_version(), platform.python_implementation()),
        "- repository: %s" % head,
        "- clients: %s" % (", ".join(versions) or "none ran"),
        "- load: %s events/flood max, %.0f bytes/event on average (Newchannel/VarSet/Newstate/Hangup "
        "from the Asterisk 22 recordings), loopback 127.0.0.1" % (f"{runner.args.max_events:,}",
                                                                   runner.event_size),
        "- machine noise: other processes used %s during the run; hypervisor steal %s%s"
        % (("%.2f cores on average" % runner.noise["foreign_cores"]) if runner.noise else "?",
           ("%.2f cores" % runner.noise["steal_cores"]) if runner.noise else "?",
           (" (**results disturbed: rerun on a quiet machine**)"
            if runner.noise and runner.noise["foreign_cores"] > 0.1 else "")),
        "- load average (1 min) at the start and end of the run: %s"
        % " / ".join("%.2f" % la[0] for la in (getattr(runner, "load_before", None),
                                                getattr(runner, "load_after", None)) if la),
        "- mode: %s, %d repetitions per scenario (median reported), ~%.1f s per repetition" % (
            "--quick" if runner.args.quick else "full", runner.args.reps, runner.args.target),
        "- CPU placements (column CPUs), each with its own load generator, repetitions of both interleaved: "
        + "; ".join(_placement(runner, m) for m in runner.modes),
    ]


def _placement(runner, mode: str) -> str:
    if mode == "pinned" and runner.cpus[0]:
        return "pinned: load generator on CPU %s, workers on CPU %s" % (
            ",".join(map(str, sorted(runner.cpus[0]))), ",".join(map(str, sorted(runner.cpus[1]))))
    if mode == "same-cpu" and runner.cpus[0]:
        return "same-cpu: load generator and workers on CPU %s (every wake-up is a switch on one CPU)" % (
            ",".join(map(str, sorted(runner.cpus[0]))))
    return "unpinned (headline): the scheduler places the load generator and the workers, as users run"


def render(runner, seconds: float) -> str:
    table, tgts = build_report(runner)
    lines = ["# amiclient benchmark results", "",
             "Latest run of `python benchmarks/run.py%s --write`; see benchmarks/README.md for what "
             "each number means. No result here is asserted anywhere." % (" --quick" if runner.args.quick else ""),
             "", "## Machine", ""]
    lines += machine_info(runner)
    lines += ["- wall time of the run: %.0f s" % seconds, "", "## Results", "", table, "",
              "## Targets (from the benchmark issue)", "",
              "| target | measured | verdict |", "|---|---:|---|"]
    for t, m, v, extra in tgts:
        lines.append("| %s | %s | %s%s |" % (t, m, v, (" (" + extra + ")") if extra else ""))
    R = runner.results
    st = [(rkey(k, m), (R.get(("amiclient", rkey(k, m))) or {}).get("stats")) for k, *_ in SCENARIOS
          for m in runner.modes]
    st = [(k, s) for k, s in st if s]
    if st:
        lines += ["", "## amiclient `client.stats` at the end of each scenario", ""]
        for k, s in st:
            lines.append("- %s: `%s`" % (k, json.dumps(s, sort_keys=True)))
    analysis = HERE / "ANALYSIS.md"  # hand-written profile notes behind the verdicts
    if analysis.exists():
        lines += ["", analysis.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"
