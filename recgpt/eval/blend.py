"""The blended channel: the final K items under a traffic allocation between SASRec and the LLM channel.

RecGPT does not replace the existing recall channels: its items are blended with them under a quota, the share of
slots given to the LLM channel. Here the classical channel is SASRec (`recgpt eval --method sasrec`) and the LLM
channel is recgpt's interleaved tag retrieval (`--method recgpt`), both read from their resumable result stores for
the same users, split and K, so a blend costs no LLM call once both have run.

Slots are dealt in order: slot i (1-based) goes to the LLM channel when the LLM items placed so far are fewer than
`floor(i · quota)`, so every prefix of the list holds the quota's share (at K=10 and quota 0.3, slots 4, 7 and 10).
An item already placed is skipped (deduplicated), and a channel that runs dry gives its slot to the other.

The quota is tuned on the validation split (`--quota auto` there: a grid of 0, 0.1, ..., 1 by item HR@10, ties to
the smaller quota, i.e. to trusting SASRec) and read back from that report on test; a fixed `--quota 0.3` makes the
LLM channel earn its slots against SASRec's at a share set in advance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recgpt.errors import RecGPTError

QUOTA_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
TUNING_METRIC = "item_hr@10"
RRF_CONSTANT = 60
"""Reciprocal-rank fusion's k (Cormack et al. 2009): a rank r scores 1/(k + r); 60 is the published default."""


def blend(classical: Sequence[str], llm: Sequence[str], quota: float, k: int) -> list[str]:
    """The first `k` items of the classical and LLM lists merged under `quota` (see the module docstring)."""
    if not 0.0 <= quota <= 1.0:
        raise ValueError(f"quota must be within [0, 1] (got {quota})")
    sources = {"classical": list(classical), "llm": list(llm)}
    cursor = {"classical": 0, "llm": 0}
    placed: list[str] = []
    seen: set[str] = set()
    from_llm = 0

    def take(channel: str) -> str | None:
        items = sources[channel]
        while cursor[channel] < len(items):
            item = items[cursor[channel]]
            cursor[channel] += 1
            if item not in seen:
                return item
        return None

    for slot in range(1, k + 1):
        first = "llm" if from_llm < math.floor(slot * quota + 1e-9) else "classical"
        second = "classical" if first == "llm" else "llm"
        item, channel = take(first), first
        if item is None:
            item, channel = take(second), second
        if item is None:
            break
        placed.append(item)
        seen.add(item)
        from_llm += channel == "llm"
    return placed


def fuse(classical: Sequence[str], llm: Sequence[str], weight: float, k: int, constant: int = RRF_CONSTANT) -> list[str]:
    """Weighted reciprocal-rank fusion: item score `(1 - weight) / (c + rank in classical) + weight / (c + rank in llm)`
    (ranks from 1; an item absent from a list gets nothing from it); the first `k` by score, ties to the classical
    list's order, then the LLM list's. Unlike the quota blend, an item both channels rank scores from both: agreement
    lifts it above an item only one channel ranks at the same place."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1] (got {weight})")
    scores: dict[str, float] = {}
    for share, items in ((1.0 - weight, classical), (weight, llm)):
        for rank, item in enumerate(dict.fromkeys(items), start=1):
            scores[item] = scores.get(item, 0.0) + share / (constant + rank)
    order = {item: n for n, item in enumerate(dict.fromkeys([*classical, *llm]))}
    return sorted(scores, key=lambda item: (-scores[item], order[item]))[:k]


def quota_label(quota: float, row: str = "blend") -> str:
    """The row name of a fixed-share blend or fusion in reports: `blend@0.30`, `fusion+evidence@0.40`."""
    return f"{row}@{quota:.2f}"


def tuned_quota(report_dir: Path, dataset_slug: str, row: str = "blend") -> float:
    """The LLM share that `recgpt eval --method <blend|fusion> --split validation` (named `row`) chose, from its report
    in `report_dir`."""
    path = report_dir / f"eval-{dataset_slug}-validation-{row}.json"
    method = row.split("+", 1)[0]
    if not path.is_file():
        raise RecGPTError(f"no tuned LLM share: {path} is missing; run `recgpt eval --method {method} --split validation"
                          f"{' --name ' + row if row != method else ''}` first (it tunes it), or pass --quota 0.3")
    return float(json.loads(path.read_text())["blend"]["quota"])


def sweep(per_quota_hits: dict[float, list[float]]) -> tuple[float, dict[str, float]]:
    """The best quota by mean hit rate (ties: the smaller quota) and the mean per quota."""
    means = {q: (sum(h) / len(h) if h else 0.0) for q, h in per_quota_hits.items()}
    best = min(means, key=lambda q: (-round(means[q], 12), q))
    return best, {f"{q:.1f}": v for q, v in sorted(means.items())}


def describe(quota: float, source: str, grid: dict[str, float] | None) -> dict[str, Any]:
    return {"quota": quota, "quota_source": source, "tuning_metric": TUNING_METRIC, "grid": grid or {}}
