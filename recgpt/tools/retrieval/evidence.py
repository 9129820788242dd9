"""Collaborative evidence for the agents: what a sequential model and the shop's purchase sequences say a user buys
next, by category, in the words of the grounding vocabulary.

Why: a 0.5B model that reads a user's titles cannot know what Office buyers buy next; SASRec knows it. Given
these lines inside the user context, the experts may follow the evidence or leave it (each tag is still grounded in
the full catalogue enum). Two signals, both from the split's *training* interactions only (`Dataset.training_sequences`:
no held-out target of the split ever enters them):

- **likely next categories**: SASRec's next-item distribution after the history (softmax over the catalogue, the
  history's own items left out) summed per vocabulary category, the `m` largest with their shares;
- **bought next after**: for the user's latest distinct items, the categories that followed each of them most often
  in the split's training sequences (next-item transitions, counted once per occurrence).

A multi-genre item (MovieLens) counts towards each of its genres (its probability split evenly), as cat HR scores it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from recgpt.data.dataset import Dataset
from recgpt.data.records import Item
from recgpt.tools.retrieval.grounding import PATH_SEPARATOR, CategoryVocabulary

SHARE_DECIMALS = 4
"""Shares are kept to 1/10,000 (the block shows whole percents)."""


class NextItemModel(Protocol):
    """What evidence needs of a sequential model (`recgpt.tools.retrieval.sequential.SASRec` has it)."""

    def knows_any(self, history: Sequence[str]) -> bool: ...

    def score(self, history: Sequence[str], item_ids: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class CategoryShare:
    label: str
    share: float


@dataclass(frozen=True)
class NextAfter:
    """The categories bought right after one history item in other sequences, with their counts."""

    item_id: str
    title: str
    categories: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Evidence:
    likely: tuple[CategoryShare, ...] = ()
    """The `m` likeliest next categories (the block lists them)."""
    after: tuple[NextAfter, ...] = ()
    mass: tuple[CategoryShare, ...] = ()
    """Every category's share, largest first (`likely` is its head): what the arbiter weighs each pooled tag by."""

    def __bool__(self) -> bool:
        return bool(self.likely or self.after)

    @property
    def labels(self) -> set[str]:
        """Every category label the evidence names."""
        return {c.label for c in self.likely} | {label for a in self.after for label, _ in a.categories}


def item_labels(item: Item, vocabulary: CategoryVocabulary) -> list[str]:
    """The vocabulary categories an item belongs to: the entry holding its category path, or, for a multi-genre item
    (MovieLens: path 'Movies > Animation', genres Animation, Children's, Comedy), every genre that is a sibling entry
    of its path, so that a film counts towards each of its genres as cat HR scores it."""
    if item.genres and item.category_path:
        parent = item.category_path[:-1]
        labels = [vocabulary.label_of(PATH_SEPARATOR.join((*parent, genre))) for genre in item.genres]
        found = [label for label in dict.fromkeys(labels) if label is not None]
        if found:
            return found
    label = vocabulary.label_of(item.category) if item.category else None
    return [label] if label is not None else []


def category_mass(model: NextItemModel, history: Sequence[str], dataset: Dataset,
                  vocabulary: CategoryVocabulary) -> list[CategoryShare]:
    """The model's next-item probability (softmax over the catalogue less the history's items) summed per vocabulary
    category, largest first (ties: vocabulary order); empty when the model knows no history item. Items outside every
    vocabulary entry (an inner node) count in the softmax but belong to no category, so shares may sum below 1."""
    if not history or not model.knows_any(history):
        return []
    ids = list(dataset.items)
    seen = set(history)
    logits = model.score(history, ids)
    finite = [v for i, v in zip(ids, logits) if i not in seen and math.isfinite(v)]
    if not finite:
        return []
    top = max(finite)
    total = sum(math.exp(v - top) for v in finite)
    mass: dict[str, float] = {}
    for item_id, logit in zip(ids, logits):
        if item_id in seen or not math.isfinite(logit):
            continue
        labels = item_labels(dataset.items[item_id], vocabulary)
        for label in labels:  # a multi-genre item's probability is split evenly across its genres
            mass[label] = mass.get(label, 0.0) + math.exp(logit - top) / total / len(labels)
    order = {label: n for n, label in enumerate(vocabulary.labels)}
    # shares rounded before ordering: the same model scores a history with float noise that depends on the thread count
    # (a Ray worker and the driver differ), and a near-tie must not reorder the list between processes
    ranked = sorted(mass.items(), key=lambda kv: (-round(kv[1], SHARE_DECIMALS), order[kv[0]]))
    return [CategoryShare(label, round(share, SHARE_DECIMALS)) for label, share in ranked]


def next_category_counts(dataset: Dataset, split: str, vocabulary: CategoryVocabulary) -> dict[str, Counter[str]]:
    """Item id -> how often each vocabulary category came right after it, over the split's training sequences (kept on
    the dataset per split and vocabulary: one pass over the interactions)."""

    def count() -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for sequence in dataset.training_sequences(split).values():
            for before, after in zip(sequence, sequence[1:]):
                if before == after or after not in dataset.items:
                    continue
                for label in item_labels(dataset.items[after], vocabulary):
                    out.setdefault(before, Counter())[label] += 1
        return out

    return dataset.derived(("next_category_counts", split, vocabulary.level, vocabulary.labels), count)


def collaborative_evidence(dataset: Dataset, split: str, model: NextItemModel | None, history: Sequence[str],
                           vocabulary: CategoryVocabulary, m: int, after_items: int = 2,
                           per_item: int = 3) -> Evidence:
    """The evidence block's content for one user: the `m` likeliest next categories by `model` (none without a model
    or with `m` 0), and for each of the `after_items` latest distinct history items the `per_item` categories most
    often bought right after it (ties: vocabulary order; an item nobody bought anything after is left out). `history` is oldest first, as the split's example gives it."""
    if m <= 0 or not history:
        return Evidence()
    mass = tuple(category_mass(model, history, dataset, vocabulary)) if model is not None else ()
    counts = next_category_counts(dataset, split, vocabulary)
    order = {label: n for n, label in enumerate(vocabulary.labels)}
    after: list[NextAfter] = []
    for item_id in list(dict.fromkeys(reversed(history)))[:after_items]:
        following = counts.get(item_id)
        if not following or item_id not in dataset.items:
            continue
        best = sorted(following.items(), key=lambda kv: (-kv[1], order[kv[0]]))[:per_item]
        after.append(NextAfter(item_id=item_id, title=dataset.items[item_id].title, categories=tuple(best)))
    return Evidence(likely=mass[:m], after=tuple(after), mass=mass)
