"""Automatic judge labels by in-batch shuffling (RecGPT-V2, Agent-as-a-Judge evaluation).

Positives are real pairs: (user context, a policy tag whose category matches the user's real next
interaction) and (user, item, explanation written for that user). Negatives are the same outputs
moved to *other* users of the batch by a seeded derangement, so no output stays with its owner.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Labelled(BaseModel, Generic[T]):
    owner: str
    context_user: str
    payload: T
    label: bool


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point (n >= 2): index i's payload goes to user perm[i]."""
    if n < 2:
        raise ValueError("in-batch shuffling needs at least two users")
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    # Sattolo-style: each element of the shuffled cycle goes to the next one -> one n-cycle, no fixed point.
    perm = [0] * n
    for position, index in enumerate(order):
        perm[index] = order[(position + 1) % n]
    return perm


def shuffle_label(positives: Sequence[tuple[str, T]], seed: int,
                  still_valid: Callable[[str, T], bool] | None = None) -> list[Labelled[T]]:
    """Positives (owner, payload) plus one negative per positive: the payload shown to another owner.

    `still_valid(user, payload)` drops a negative that happens to be right for its new user (e.g. a
    tag whose category matches that user's target too): such a pair is not a true negative.
    """
    out = [Labelled[T](owner=o, context_user=o, payload=p, label=True) for o, p in positives]
    if len(positives) < 2:
        return out
    perm = derangement(len(positives), seed)
    for i, (owner, payload) in enumerate(positives):
        receiver = positives[perm[i]][0]
        if receiver == owner or (still_valid is not None and still_valid(receiver, payload)):
            continue
        out.append(Labelled[T](owner=owner, context_user=receiver, payload=payload, label=False))
    return out


def binary_scores(labels: Sequence[bool], predictions: Sequence[bool]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of `predictions` (positive class = True); 0 where undefined."""
    tp = sum(lab and pred for lab, pred in zip(labels, predictions))
    fp = sum((not lab) and pred for lab, pred in zip(labels, predictions))
    fn = sum(lab and not pred for lab, pred in zip(labels, predictions))
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(lab == pred for lab, pred in zip(labels, predictions)) / n if n else 0.0
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "n": float(n)}
