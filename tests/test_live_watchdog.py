"""examples/queue_watchdog.py against the fake: callers waiting too long are redirected or paged, once each."""
from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import pytest

from amiclient import AMIClient
from amiclient.live import LiveState
from amiclient.testing import FakeAMIServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "queue_watchdog.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("queue_watchdog", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["queue_watchdog"] = module
    spec.loader.exec_module(module)
    return module


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


@pytest.fixture
def setup() -> Iterator[Tuple[FakeAMIServer, AMIClient, LiveState]]:
    with FakeAMIServer(hold_calls=True) as srv:
        client = AMIClient("127.0.0.1", srv.port, "admin", "secret")
        with client.connect(), LiveState(client) as live:
            assert live.wait_synced(5)
            yield srv, client, live


def test_caller_waiting_too_long_is_redirected_once(setup: Tuple[FakeAMIServer, AMIClient, LiveState]) -> None:
    srv, client, live = setup
    watchdog_mod = _load()
    early = srv.simulate_call("PJSIP/100")
    late = srv.simulate_call("PJSIP/101")
    assert early is not None and late is not None
    srv.switch.queue_join("support", early)
    assert wait_until(lambda: len(live.queues["support"].callers) == 1)
    joined = live.queues["support"].callers[0].joined
    srv.switch.queue_join("support", late)
    assert wait_until(lambda: len(live.queues["support"].callers) == 2)
    dog = watchdog_mod.QueueWatchdog(client, live, 30, redirect_to=("overflow", "from-internal"))
    assert dog.check(now=joined + 10) == []  # nobody waited long enough
    # past the limit for the first caller only (the second joined a little later)
    late_joined = live.queues["support"].callers[1].joined
    assert late_joined > joined
    acted = dog.check(now=joined + 30 + (late_joined - joined) / 2)
    assert [c.channel for c in acted] == [early]
    redirects = [a for a in srv.received_actions if a.get("Action", "").lower() == "redirect"]
    assert [(a["Channel"], a["Exten"], a["Context"]) for a in redirects] == [
        (c.channel, "overflow", "from-internal") for c in acted]
    chan = srv.calls.find(early)
    assert chan is not None and (chan.context, chan.exten) == ("from-internal", "overflow")
    assert [c.channel for c in dog.check(now=joined + 100)] == [late]  # the first one never twice


def test_page_callback_gets_queue_caller_and_wait(setup: Tuple[FakeAMIServer, AMIClient, LiveState]) -> None:
    srv, client, live = setup
    watchdog_mod = _load()
    name = srv.simulate_call("PJSIP/200")
    assert name is not None
    srv.switch.queue_join("support", name)
    assert wait_until(lambda: len(live.queues["support"].callers) == 1)
    pages: List[Tuple[str, str, float]] = []
    dog = watchdog_mod.QueueWatchdog(client, live, 5, page=lambda q, c, w: pages.append((q.name, c.channel, w)))
    joined = live.queues["support"].callers[0].joined
    dog.check(now=joined + 6)
    dog.check(now=joined + 7)
    assert [(q, c) for q, c, _ in pages] == [("support", name)] and pages[0][2] == pytest.approx(6)
    # it leaves the queue, comes back: a new wait, a new page
    srv.switch.queue_leave(name)
    assert wait_until(lambda: not live.queues["support"].callers)
    dog.check(now=joined + 8)
    srv.switch.queue_join("support", name)
    assert wait_until(lambda: len(live.queues["support"].callers) == 1)
    dog.check(now=live.queues["support"].callers[0].joined + 6)
    assert len(pages) == 2
    assert not srv.received_actions or all(a.get("Action") != "Redirect" for a in srv.received_actions)


def test_watchdog_needs_an_action(setup: Tuple[FakeAMIServer, AMIClient, LiveState]) -> None:
    _, client, live = setup
    with pytest.raises(ValueError):
        _load().QueueWatchdog(client, live, 5)


def test_watchdog_thread_acts_on_its_own(setup: Tuple[FakeAMIServer, AMIClient, LiveState]) -> None:
    srv, client, live = setup
    name = srv.simulate_call("PJSIP/300")
    assert name is not None
    srv.switch.queue_join("support", name)
    paged = threading.Event()
    dog = _load().QueueWatchdog(client, live, 0.0, page=lambda q, c, w: paged.set(), interval=0.02).start()
    try:
        assert paged.wait(5)
    finally:
        dog.stop()
