"""Automatic judge labels by in-batch shuffling (RecGPT-V2, Agent-as-a-Judge evaluation).

Positives are real pairs: (user context, a policy tag whose category matches the user's real next
interaction) and (user, item, explanation written for that user). Negatives are the same outputs
moved to *other* users of the batch by a seeded derangement, so no output stays with its owner, and
(`corrupted`) the owner's own output with a known defect written in: title filler, a cut word or a pasted
path in a tag; a prompt echo, a broken-off sentence, the title restated, a fact the data never states or
another item's title in an explanation. A judge that passes shuffled pairs may still pass these: they test
whether it reads the text, not only the fit.
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
    kind: str = "real"
    """How the row was made: real (a positive), shuffled (another user's), or the corruption's name."""


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
        out.append(Labelled[T](owner=owner, context_user=receiver, payload=payload, label=False, kind="shuffled"))
    return out


TAG_CORRUPTIONS = ("filler", "cut", "path")
EXPLANATION_CORRUPTIONS = ("echo", "unfinished", "title_only", "wrong_fact", "other_title")


def corrupt_tag(tag: str, category: str, kind: str) -> str:
    """`tag` with a defect a shopper would reject: title filler, its last word cut, or the category path pasted."""
    if kind == "filler":
        return f"{tag} x inches assorted colors pack of"
    if kind == "cut":
        words = tag.split()
        last = words[-1]
        return " ".join([*words[:-1], last[: max(1, len(last) // 3)]]) if len(last) > 3 else f"{tag} gr"
    if kind == "path":
        return category or tag
    raise ValueError(f"unknown tag corruption {kind!r}; expected one of {TAG_CORRUPTIONS}")


def corrupt_explanation(text: str, title: str, other_title: str, kind: str) -> str:
    """`text` made wrong in a way each judge dimension should see: it echoes the prompt (clarity, relevance), breaks
    off mid-sentence (clarity), restates the title (informativeness), states a fact the data never gives
    (factuality), or praises another item (relevance, factuality)."""
    if kind == "echo":
        return ("The item matches the tone, audience, emotional angle, rhetorical device and seasonal framing of the "
                "user's history.")
    if kind == "unfinished":
        words = text.rstrip(".!?").split()
        return " ".join(words[: max(3, len(words) // 2)]) + " for the r."
    if kind == "title_only":
        return f"The item fits them because it's called {title}."
    if kind == "wrong_fact":
        return f"{text.rstrip('.!?')}, and it comes with a lifetime warranty and free next-day delivery for just $5."
    if kind == "other_title":
        return f"You will love the {other_title}: it suits your recent purchases perfectly."
    raise ValueError(f"unknown explanation corruption {kind!r}; expected one of {EXPLANATION_CORRUPTIONS}")


def corrupted(positives: Sequence[tuple[str, T]], kinds: Sequence[str], corrupt: Callable[[T, str, int], T],
              key: Callable[[T], str]) -> list[Labelled[T]]:
    """One negative per positive and kind: the owner's own payload, corrupted (`corrupt(payload, kind, index)`),
    shown with the owner's own context. A corruption whose text (`key`) equals any positive's is dropped: it would
    be a positive labelled negative."""
    real = {key(p) for _, p in positives}
    out: list[Labelled[T]] = []
    for index, (owner, payload) in enumerate(positives):
        for kind in kinds:
            bad = corrupt(payload, kind, index)
            if key(bad) not in real:
                out.append(Labelled[T](owner=owner, context_user=owner, payload=bad, label=False, kind=kind))
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


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half); None without both."""
    pos = [s for lab, s in zip(labels, scores) if lab]
    neg = [s for lab, s in zip(labels, scores) if not lab]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))
