"""Endpoint balancing for a batch: least in-flight users first, a bound per endpoint, failing endpoints out of rotation.

A user's whole graph run goes to one endpoint (its agents then share that server's prefix cache). An endpoint that
fails a user is taken out of rotation for `cooldown_s`, then tried again; the user goes back to the queue and runs on
another endpoint. Each further failure in a row doubles the cool-down (up to `MAX_BACKOFF` times it), so an endpoint
that stays down costs a few probe users, not a steady stream of failures; its first success resets it. Pure Python (no Ray), driven by the batch driver only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BACKOFF = 8
"""The longest cool-down, in multiples of `cooldown_s`."""


@dataclass
class EndpointState:
    url: str
    in_flight: int = 0
    done: int = 0
    failures: int = 0
    failures_in_a_row: int = 0
    down_until: float = 0.0

    def available(self, now: float, bound: int) -> bool:
        return now >= self.down_until and self.in_flight < bound


@dataclass
class EndpointPool:
    urls: list[str]
    per_endpoint: int = 8
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    states: dict[str, EndpointState] = field(init=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("a batch needs at least one endpoint")
        if len(set(self.urls)) != len(self.urls):
            raise ValueError(f"endpoints listed twice: {self.urls}")
        self.states = {url: EndpointState(url) for url in self.urls}

    def acquire(self) -> str | None:
        """The endpoint for the next user (least in flight, list order on ties), or None when all are full or down."""
        now = self.clock()
        ready = [s for s in self.states.values() if s.available(now, self.per_endpoint)]
        if not ready:
            return None
        chosen = min(ready, key=lambda s: s.in_flight)
        chosen.in_flight += 1
        return chosen.url

    def release(self, url: str, ok: bool | None) -> None:
        """A user finished on `url` (ok), failed because of it (False: the endpoint leaves the rotation for a while), or
        never finished for another reason (None: its worker died)."""
        state = self.states[url]
        state.in_flight = max(0, state.in_flight - 1)
        if ok:
            state.done += 1
            state.failures_in_a_row = 0
        elif ok is False:
            state.failures += 1
            state.failures_in_a_row += 1
            state.down_until = self.clock() + self.cooldown_s * min(2 ** (state.failures_in_a_row - 1), MAX_BACKOFF)

    def capacity(self) -> int:
        """Users that could start now."""
        now = self.clock()
        return sum(self.per_endpoint - s.in_flight for s in self.states.values() if now >= s.down_until)

    def next_retry_in(self) -> float:
        """Seconds until the first endpoint that is down comes back (0 when one is up)."""
        now = self.clock()
        if any(now >= s.down_until for s in self.states.values()):
            return 0.0
        return min(s.down_until for s in self.states.values()) - now

    def summary(self) -> dict[str, dict[str, float]]:
        now = self.clock()
        return {s.url: {"in_flight": s.in_flight, "done": s.done, "failures": s.failures, "up": float(now >= s.down_until)}
                for s in self.states.values()}
