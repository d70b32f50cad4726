"""Live-state throughput: events/s LiveState's listener applies, as a ratio to a no-op listener.

    python benchmarks/live_state.py [--rounds N] [--reps N]

The event mix is every event of the Asterisk 22 recordings ``calls-bridged``,
``queue-calls``, ``transfers`` and ``calls-50`` (tests/fixtures/asterisk-22),
repeated ``--rounds`` times with fresh Uniqueid/Linkedid values, so every
round makes and ends new calls.  Both listeners are called the way the
client's dispatcher calls them (one call per event, on one thread); the
LiveState one takes its lock, applies the event and publishes the changes.
Rates are per second of the measuring thread's CPU time (best of ``--reps``).
Nothing here asserts on timing.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import time
from typing import Any, Callable, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from amiclient._protocol import Framer, parse_packet  # noqa: E402
from amiclient.live import LiveState  # noqa: E402
from amiclient.packet import Event  # noqa: E402

RECORDINGS = ["calls-bridged", "queue-calls", "transfers", "calls-50"]
_ID = re.compile(r"\b(1[0-9]{9})\.(\d+)\b")


def event_texts() -> List[str]:
    texts: List[str] = []
    for name in RECORDINGS:
        with open(os.path.join(ROOT, "tests", "fixtures", "asterisk-22", f"{name}.json"), encoding="utf-8") as fh:
            chunks: Any = json.load(fh)
        framer = Framer(expect_banner=chunks[0]["data"].startswith("Asterisk Call Manager"))
        for chunk in chunks:
            if chunk["dir"] == "s2c":
                for text in framer.feed(chunk["data"].encode("utf-8", "surrogateescape")):
                    if text.startswith("Event:") and "ActionID" not in text:
                        texts.append(text)
    return texts


def event_mix(rounds: int) -> List[Event]:
    texts = event_texts()
    events: List[Event] = []
    for r in range(rounds):
        for text in texts:
            packet = parse_packet(_ID.sub(lambda m, r=r: f"{m.group(1)}.{r}x{m.group(2)}", text))
            assert isinstance(packet, Event)
            events.append(packet)
    return events


class _Client:
    """Just enough client for LiveState: it never connects, so no sync runs."""

    connected = False

    def add_listener(self, callback: Callable[[Event], Any], event: Any = None) -> object:
        return object()

    def remove_listener(self, handle: object) -> bool:
        return True

    def on_state(self, callback: Callable[[Any], Any]) -> None:
        return None


def rate(listener: Callable[[Event], Any], events: List[Event]) -> float:
    """Events per second of this thread's CPU time (the machine may be shared: wall time would vary)."""
    started = time.thread_time()
    for event in events:
        listener(event)
    return len(events) / max(time.thread_time() - started, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    events = event_mix(args.rounds)
    gc.collect()
    gc.freeze()  # the mix itself is not what is measured: keep the collector off it
    noop_rates, live_rates = [], []
    for _ in range(args.reps):
        noop_rates.append(rate(lambda event: None, events))
        live = LiveState(_Client())
        live._buffer = None  # no sync will run: apply at once
        live.on("*", lambda change: None)  # pay for publishing changes too
        live_rates.append(rate(live._on_event, events))
        assert not live.channels and not live.calls, "every call of the mix ends"
        live.close()
    noop, tracked = max(noop_rates), max(live_rates)
    print(f"events per repetition: {len(events):,} ({args.rounds} rounds of {len(events) // args.rounds:,})")
    print(f"no-op listener:      {noop:12,.0f} events/s")
    print(f"LiveState listener:  {tracked:12,.0f} events/s  (ratio to no-op: {tracked / noop:.3f})")


if __name__ == "__main__":
    main()
