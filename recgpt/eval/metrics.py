"""Evaluation metrics, each a pure function with its definition in the docstring.

Conventions: one held-out target per user (leave-last-out). `K` counts *distinct* entries from the
top of a ranked list; an empty list scores 0; a K larger than the list uses the whole list.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np

from recgpt.data.records import Item

LEVELS = ("l2", "leaf", "genre")


def category_key(item: Item, level: str) -> frozenset[str]:
    """The category labels of an item at a level, as a set (genre-level items may have several).

    - `l2`: the first two levels of the category path ('Office & School Supplies > Paper');
    - `leaf`: the full category path (a leaf name alone is ambiguous across branches);
    - `genre`: the flat labels (MovieLens genres).
    """
    if level == "l2":
        return frozenset({" > ".join(item.category_path[:2])}) if item.category_path else frozenset()
    if level == "leaf":
        return frozenset({item.category}) if item.category_path else frozenset()
    if level == "genre":
        return frozenset(item.genres)
    raise ValueError(f"unknown category level {level!r}; use one of {LEVELS}")


def path_at_level(path: str, level: str) -> frozenset[str]:
    """Labels of a category path string ('A > B > C') at a level: the form tag→category mapping yields."""
    parts = [p for p in path.split(" > ") if p]
    if not parts:
        return frozenset()
    if level == "l2":
        return frozenset({" > ".join(parts[:2])})
    if level == "leaf":
        return frozenset({" > ".join(parts)})
    if level == "genre":
        return frozenset({parts[-1]})  # MovieLens paths are ('Movies', genre)
    raise ValueError(f"unknown category level {level!r}; use one of {LEVELS}")


def top_k_distinct(ranked: Iterable[str], k: int) -> list[str]:
    """The first k distinct entries of a ranked list (ties keep list order)."""
    seen: list[str] = []
    for entry in ranked:
        if entry not in seen:
            seen.append(entry)
            if len(seen) >= k:
                break
    return seen


def category_hit_at_k(ranked_categories: Sequence[frozenset[str]], target: frozenset[str], k: int) -> float:
    """Tag HR@K: 1 if any of the first K mapped categories shares a label with the target's, else 0.

    `ranked_categories[i]` is the label set the i-th tag maps to (tag → nearest category).
    """
    if k <= 0 or not target:
        return 0.0
    return 1.0 if any(cats & target for cats in ranked_categories[:k]) else 0.0


def hit_at_k(ranked_items: Sequence[str], target: str, k: int) -> float:
    """Item HR@K = Recall@K with one target: 1 if the target is among the first K distinct items."""
    return 1.0 if target in top_k_distinct(ranked_items, k) else 0.0


def ndcg_at_k(ranked_items: Sequence[str], target: str, k: int) -> float:
    """NDCG@K with one relevant item: 1/log2(rank+1) when it appears at (1-based) rank ≤ K, else 0."""
    top = top_k_distinct(ranked_items, k)
    return 1.0 / math.log2(top.index(target) + 2) if target in top else 0.0


def interleave(lists: Sequence[Sequence[str]], k: int, exclude: set[str] = frozenset()) -> list[str]:
    """Round-robin merge of ranked lists (one per tag, best tag first), deduplicated, skipping `exclude`."""
    out: list[str] = []
    depth = max((len(lst) for lst in lists), default=0)
    for position in range(depth):
        for lst in lists:
            if position < len(lst):
                entry = lst[position]
                if entry not in exclude and entry not in out:
                    out.append(entry)
                    if len(out) >= k:
                        return out
    return out


def is_new_interest(history_items: Iterable[Item], target: Item, level: str) -> bool:
    """True when the target's category (at level) never occurs in the history."""
    target_key = category_key(target, level)
    seen: set[str] = set()
    for item in history_items:
        seen |= category_key(item, level)
    return bool(target_key) and not (target_key & seen)


def mean_pairwise_cosine_distance(vectors: np.ndarray) -> float:
    """Tag diversity: mean over pairs of (1 − cosine similarity); 0 for fewer than two vectors."""
    if len(vectors) < 2:
        return 0.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.clip(norms, 1e-12, None)
    distances = [1.0 - float(unit[i] @ unit[j]) for i, j in combinations(range(len(unit)), 2)]
    return float(np.mean(distances))


def answer_concentration(answers: Sequence[Sequence[str]]) -> dict[str, object]:
    """How alike the users' answers are: the distinct categories named over all users, and the share of users whose
    answer names the most-named one. Tag diversity is within one answer and cannot see a policy that gives every user
    the same answer (GRPO's mode collapse: 10 leaves for 200 users); this can."""
    counts: dict[str, int] = {}
    for answer in answers:
        for category in dict.fromkeys(answer):
            counts[category] = counts.get(category, 0) + 1
    if not counts:
        return {"distinct_categories": 0, "top_category": None, "top_category_user_share": 0.0}
    top = max(counts, key=lambda c: (counts[c], c))
    return {"distinct_categories": len(counts), "top_category": top, "top_category_user_share": counts[top] / len(answers)}


def exclusive_recall(llm_hits: Sequence[bool], classical_hits: Sequence[Sequence[bool]]) -> tuple[float, float]:
    """(share of all targets hit by the LLM route and by no classical channel,
        share of the LLM route's hits that no classical channel also hit).

    `classical_hits[c][u]` says whether channel c hit user u's target at the same K.
    """
    n = len(llm_hits)
    if n == 0:
        return 0.0, 0.0
    for channel in classical_hits:
        if len(channel) != n:
            raise ValueError("every channel needs one entry per user")
    exclusive = sum(1 for u in range(n) if llm_hits[u] and not any(ch[u] for ch in classical_hits))
    hits = sum(1 for h in llm_hits if h)
    return exclusive / n, (exclusive / hits if hits else 0.0)


def paired_difference(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], metric: str,
                      users: list[str] | None = None) -> dict[str, float] | None:
    """Mean of a − b over the users both scored, with the standard error of that mean (paired: the same users, so
    the user-to-user spread cancels) and the ratio of the difference to its error."""
    common = [u for u in (users if users is not None else a) if u in a and u in b and metric in a[u] and metric in b[u]]
    if len(common) < 2:
        return None
    diffs = [a[u][metric] - b[u][metric] for u in common]
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    return {"users": len(common), "difference": mean, "standard_error": se, "z": mean / se if se else 0.0}
