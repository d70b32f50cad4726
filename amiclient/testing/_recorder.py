"""A callback that records what it is given, for tests that wait on another thread."""
from __future__ import annotations

import threading
from typing import Callable, Generic, List, Optional, TypeVar

__all__ = ["Recorder"]

T = TypeVar("T")


class Recorder(Generic[T]):
    """Use as a listener (or ``on_state`` callback); ``wait_for`` blocks until enough arrived.

    ::

        seen = Recorder()
        client.add_listener(seen, event="Hangup")
        server.emit("Hangup", Channel="SIP/1")
        assert seen.wait_for(1)[0]["Channel"] == "SIP/1"
    """

    def __init__(self) -> None:
        self.items: List[T] = []
        self._cond = threading.Condition()

    def __call__(self, item: T) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, count: int = 1, where: Optional[Callable[[T], bool]] = None, timeout: float = 5.0) -> List[T]:
        """The recorded items (those matching ``where``) once there are ``count``; AssertionError on timeout."""
        def matching() -> List[T]:
            return [item for item in self.items if where is None or where(item)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"waited {timeout:g} s for {count} items, got {len(matching())}: {self.items[-5:]!r}")
            return matching()
