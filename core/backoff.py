"""Waits between reconnection attempts: doubling from a first delay up to a cap, with jitter
so that many processes losing the same server do not knock on it in step."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first: float = 0.5
    cap: float = 10.0
    jitter: float = 0.2  # each delay is drawn within ±20 % of the nominal one
    random: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """The wait before the next attempt; each call doubles the nominal delay."""
        nominal = min(self.cap, self.first * 2**self.attempts)
        self.attempts += 1
        return nominal * (1 - self.jitter + 2 * self.jitter * self.random())

    def reset(self) -> None:
        self.attempts = 0
