"""Model-based test of the io promises: threads' actions, callbacks calling back, links dropping, a server not reading.

After every step: each future resolves exactly once, by its deadline (plus
a little slack for a loaded machine), with its own answer or an exception.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any, Dict, List, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from amiclient import ActionFuture, AMIClient, AMIError, Backoff
from amiclient.testing import FakeAMIServer, Fault

USERS = {"admin": "s3cr3t!"}
SLACK = 0.2


def _echo_after(session: Any, packet: Any) -> Any:
    session.sleep(float(packet.get("Delay", "0")))
    return [("Response", "Success"), ("ActionID", packet.get("ActionID", "")), ("Tag", packet.get("Tag", ""))]


class ClientMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server = FakeAMIServer(users=USERS).start()
        self.server.add_handler("Echo", _echo_after)
        self.server.add_handler("Silent", lambda session, packet: None)
        self.client = AMIClient("127.0.0.1", self.server.port, "admin", USERS["admin"], reconnect=True,
                                backoff=Backoff(base=0.01, cap=0.05), keepalive=0.1, ping_timeout=0.3, timeout=1.0)
        self.client.connect()
        self.sent: List[Tuple[ActionFuture, float, str]] = []
        self.calls: Dict[str, int] = {}
        self.lock = threading.Lock()
        self.serial = 0
        self.late: List[str] = []

    def _callback(self, mode: str) -> Any:
        def callback(future: ActionFuture) -> None:
            with self.lock:
                self.calls[future.action_id] = self.calls.get(future.action_id, 0) + 1
            if mode == "nested":
                try:
                    self.client.action("Echo", Tag="nested", timeout=0.3)
                except AMIError:
                    pass
            elif mode == "block":
                threading.Event().wait(0.2)
        return callback

    @rule(kind=st.sampled_from(["Echo", "Silent", "Ping"]), timeout=st.sampled_from([0.05, 0.2, 0.5]),
          delay=st.sampled_from([0.0, 0.0, 0.1, 0.4]), mode=st.sampled_from(["count", "nested", "block"]),
          threads=st.integers(1, 3), big=st.sampled_from([False, False, True]))
    def send(self, kind: str, timeout: float, delay: float, mode: str, threads: int, big: bool) -> None:
        padding = {f"Pad{i}": "x" * 1000 for i in range(100)} if big else {}

        def one() -> None:
            with self.lock:
                self.serial += 1
                tag = str(self.serial)
            started = time.monotonic()
            try:
                future = self.client.send_action(kind, padding, timeout=timeout, Tag=tag, Delay=str(delay))
            except AMIError:
                if time.monotonic() - started > timeout + SLACK:
                    self.late.append(f"send_action({kind}, {timeout}) raised late")
                return
            future.add_done_callback(self._callback(mode))
            with self.lock:
                self.sent.append((future, started + timeout, tag if kind == "Echo" else ""))

        workers = [threading.Thread(target=one) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(5)

    @rule()
    def stop_reading(self) -> None:
        self.server.set_fault(Fault.STOP_READING)

    @rule()
    def resume_reading(self) -> None:
        self.server.clear_faults()

    @rule()
    def drop_links(self) -> None:
        self.server.drop_all()

    @rule()
    def restart_server(self) -> None:
        self.server.restart()

    @rule()
    def settle(self) -> None:
        self._check_all()

    def _check_all(self) -> None:
        with self.lock:
            sent, self.sent = self.sent, []
        for future, deadline, tag in sent:
            try:
                response = future.result(max(0.0, deadline + SLACK - time.monotonic()))
            except (FuturesTimeoutError, TimeoutError) as exc:
                if not isinstance(exc, AMIError):
                    raise AssertionError(f"{future!r} not resolved by its deadline") from None
                continue
            except AMIError:
                continue
            if tag:
                assert response.get("Tag") == tag, f"{future!r} got someone else's answer"

    @invariant()
    def nothing_late(self) -> None:
        assert not self.late, self.late

    @invariant()
    def callbacks_run_at_most_once(self) -> None:
        with self.lock:
            assert all(count == 1 for count in self.calls.values()), self.calls

    def teardown(self) -> None:
        try:
            self.server.clear_faults()
            self._check_all()
        finally:
            self.client.close(timeout=2)
            self.server.stop()


ClientMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=15, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_client_machine = ClientMachine.TestCase
