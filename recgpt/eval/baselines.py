"""Classical recommenders on the same split, catalogue and K as recgpt.

All of them are fitted on *training sequences only*: for the test split each user's history before
the test target, for the validation split the history before the validation target. No held-out
target ever enters a count, a co-occurrence or a gradient.

SASRec itself lives in `recgpt.tools.retrieval.sequential` (the collaborative retriever scores with it, and tools may not import
eval); it is re-exported here, so `recgpt.eval.baselines.SASRec` is the same class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from recgpt.data.dataset import Dataset
from recgpt.tools.retrieval.sequential import SASRec, _SASRecNet

__all__ = ["Popularity", "ItemKNN", "SASRec", "_SASRecNet", "training_sequences", "history_categories"]


class Popularity:
    """Global popularity: items ranked by interaction count in the training sequences."""

    name = "popularity"

    def fit(self, sequences: dict[str, list[str]]) -> Popularity:
        counts = Counter(item for seq in sequences.values() for item in seq)
        self.ranking = [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        return self

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        seen = set(history)
        return [i for i in self.ranking if i not in seen][:k]


class ItemKNN:
    """Item–item co-occurrence: sim(i,j) = c_ij / sqrt(c_i · c_j) over users' training sequences;
    score(j) = Σ_{i ∈ history} sim(i, j); ties and cold users fall back to popularity."""

    name = "itemknn"

    def fit(self, sequences: dict[str, list[str]]) -> ItemKNN:
        self.popularity = Popularity().fit(sequences)
        vocab = sorted({i for seq in sequences.values() for i in seq})
        self.index = {item: n for n, item in enumerate(vocab)}
        self.items = vocab
        matrix = np.zeros((len(vocab), len(vocab)), dtype=np.float32)
        for seq in sequences.values():
            ids = sorted({self.index[i] for i in seq})
            for a in ids:
                matrix[a, ids] += 1.0
        counts = np.diag(matrix).copy()
        np.fill_diagonal(matrix, 0.0)
        norm = np.sqrt(np.outer(counts, counts))
        self.sim = np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)
        self.pop_rank = np.zeros(len(vocab), dtype=np.float32)
        for rank, item in enumerate(self.popularity.ranking):
            self.pop_rank[self.index[item]] = -rank * 1e-9  # tie-break by popularity
        return self

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        known = [self.index[i] for i in set(history) if i in self.index]
        scores = self.sim[known].sum(axis=0) if known else np.zeros(len(self.items), dtype=np.float32)
        scores = scores + self.pop_rank
        scores[known] = -np.inf
        order = np.argsort(-scores, kind="stable")
        seen = set(history)
        return [self.items[j] for j in order[: k + len(seen)] if self.items[j] not in seen][:k]


def training_sequences(dataset: Dataset, split: str) -> dict[str, list[str]]:
    """Every user's history before the held-out target of `split` (what models may learn from).

    Defined once, in the data layer (`Dataset.training_sequences`), so that the collaborative retriever learns from
    the same past as these baselines; kept here under its old name for the callers and tests that use it."""
    return dataset.training_sequences(split)


def history_categories(dataset: Dataset, history: Sequence[str]) -> list[str]:
    """History categories (full paths) by frequency, ties broken by recency: the category baseline's 'tags'."""
    counts: Counter[str] = Counter()
    last_seen: dict[str, int] = {}
    for position, item_id in enumerate(history):
        category = dataset.items[item_id].category
        if category:
            counts[category] += 1
            last_seen[category] = position
    return sorted(counts, key=lambda c: (-counts[c], -last_seen[c]))
