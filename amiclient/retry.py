"""Reconnect policy: how long to wait before each attempt."""
from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``base * factor**(attempt-1)``, capped, randomised.

    ``jitter`` is the fraction of the delay that is random (0 = none,
    0.5 = the delay lies in [50%, 100%] of the computed value).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff {self!r}")

    def compute(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)
        delay = min(self.cap, self.base * self.factor ** exponent)
        return delay * (1.0 - self.jitter * random.random())
