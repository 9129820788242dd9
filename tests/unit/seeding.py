"""Tiny random models built the same way whatever ran before them in the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def seeded(build: Callable[[], T], seed: int = 0) -> T:
    """`build()` under `seed`, leaving the global torch RNG as it was: tests that assert on a tiny model's greedy
    answers or learned order do not depend on which tests consumed the RNG first (CI's order differs from a local run)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()
