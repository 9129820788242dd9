"""The collaborative retriever: a tag's items ranked by `beta · semantic(tag, item) + (1 − beta) · collaborative(user, item)`.

Why: a tag retrieved by text similarity alone returns the same items for every user (Office, 200 test users: item
HR@10 ≈ .01 even with the user's own history categories as tags, against SASRec's .130), because within a category
the tag cannot say which product this user buys next. RecGPT's paper scores a tag's items by mixing the semantic
relevance with a collaborative score of the user; here the collaborative score is SASRec's next-item logit
(`recgpt.tools.retrieval.sequential`), trained on the interactions before the held-out target of the user's split.

Per query, the candidates:

- a **grounded** tag (its category named under the schema's enum) keeps its promise: every item at or below its
  category, and only when those run dry (fewer than `k` left after the history) the items under its parent, then the
  grandparent's; each hit says which (`source`: `category` or `parent`). Measured on Office validation before this
  change, a tag grounded in *Photo Paper* showed copy paper and a laminator: its candidates were the whole
  catalogue's semantic neighbours plus the category's items, and SASRec (beta 0) preferred the popular outsiders.
- a **free** tag: the `depth` items nearest the tag by exact cosine over the catalogue's item vectors ∪ the `depth`
  items with the highest collaborative score under the tag's nearest category (`source`: `semantic`).

Both terms are computed for every candidate of a tier, min-max normalised within it (a constant term is 0.5), mixed
with `beta`, and the best returned. The semantic term is the MiniLM cosine similarity of tag and item text (what Chroma's
distance measures); the semantic retriever (Chroma) maps free tags to categories and answers for users the model does not know.

Without a user (or with no history the model knows) there is nothing collaborative to say: the semantic
retriever's own answer is returned unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from recgpt.data.dataset import Dataset
from recgpt.tools.retrieval.chroma import CatalogueIndex
from recgpt.tools.retrieval.protocol import CategoryHit, ItemHit, Retriever, UserSignals, search
from recgpt.tools.retrieval.sequential import SASRec

logger = logging.getLogger(__name__)

Embedder = Callable[[list[str]], np.ndarray]
"""Texts -> (n, d) unit vectors (the registry's MiniLM: `recgpt.tools.retrieval.embeddings.Embedder`)."""

QUERY_CACHE = 4096
"""Query vectors kept per retriever: tags repeat across users and calls (history categories, an evaluation grid)."""


def minmax(values: Sequence[float]) -> list[float]:
    """Scale to [0, 1] (min -> 0, max -> 1); a constant (or empty) set gives 0.5 each: it cannot order anything.

    `-inf` entries (items a model has no evidence for) are floored to the smallest finite value first; all `-inf`
    is a constant set."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return [0.5] * len(values)
    low, high = min(finite), max(finite)
    if high - low <= 1e-12:
        return [0.5] * len(values)
    return [(max(v, low) - low) / (high - low) if not np.isnan(v) else 0.0 for v in values]


_NONE = np.zeros(0, dtype=np.int64)


def _items_under_each_path(dataset: Dataset, ids: list[str]) -> dict[str, np.ndarray]:
    """Every category path prefix of the catalogue ('A', 'A > B', ...) -> the positions (in `ids`) of the items at or
    below it: one pass over the catalogue, so that a tag's category items are a lookup."""
    under: dict[str, list[int]] = {}
    for position, item_id in enumerate(ids):
        path = dataset.items[item_id].category_path
        for level in range(1, len(path) + 1):
            under.setdefault(" > ".join(path[:level]), []).append(position)
    return {category: np.asarray(positions, dtype=np.int64) for category, positions in under.items()}


class CollaborativeRetriever:
    """A `Retriever` that re-ranks a semantic retriever's candidates (plus the tag's category) by the user.

    `model_for(split)` returns the trained SASRec of this dataset for that split (the registry's, loaded once);
    it is asked lazily, so a retriever made for serving never trains the test split's model and vice versa.
    `beta` weighs the semantic term (1: semantic order, 0: collaborative order among the candidates); `depth` is
    the candidates taken from each source per query; `item_vectors` (see `catalogue_vectors`) may be passed in when
    several retrievers share one catalogue. Thread-safe: the lazy state is built under a lock and the
    models and vectors are only read afterwards."""

    def __init__(self, dataset: Dataset, semantic: Retriever, model_for: Callable[[str], SASRec], embedder: Embedder,
                 beta: float = 0.5, depth: int = 50, item_vectors: np.ndarray | None = None) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be within [0, 1] (got {beta})")
        if depth < 1:
            raise ValueError(f"depth must be at least 1 (got {depth})")
        self.dataset = dataset
        self.semantic = semantic
        self.model_for = model_for
        self.beta = beta
        self.depth = depth
        self.embedder: Embedder = embedder
        self._ids: list[str] = list(dataset.items)
        self._position = {item_id: n for n, item_id in enumerate(self._ids)}
        self._vectors: np.ndarray | None = item_vectors  # rows aligned with `dataset.items`; None: loaded at first use
        self._under = _items_under_each_path(dataset, self._ids)
        self._queries: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()  # the query-vector cache
        self._vectors_lock = threading.Lock()  # the item vectors, loaded once

    # -- the Retriever protocol ----------------------------------------------------------------------------------
    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset(),
                     user: UserSignals | None = None,
                     categories: Sequence[str | None] | None = None) -> list[list[ItemHit]]:
        """Per query its top `k` items by the mixed score, best first, none in `exclude`; the semantic retriever's answer
        for a user the model does not know. A grounded query (its entry in `categories`) takes its candidates from its
        category, then from its ancestors while fewer than `k` (see the module docstring)."""
        if not queries:
            return []
        grounded = [c if c and c in self._under else None for c in (categories or [None] * len(queries))]
        history = list(user.history_item_ids) if user is not None else []
        model = self.model_for(user.split) if user is not None and history else None
        if model is None or not model.knows_any(history):
            return search(self.semantic, queries, k, exclude, user, grounded)
        depth = max(self.depth, k)
        free = [n for n, c in enumerate(grounded) if c is None]
        nearest_free = self.semantic.nearest_categories([queries[n] for n in free], 1) if free else []
        nearest: list[str] = [""] * len(queries)
        for n, hit in zip(free, nearest_free):
            nearest[n] = hit[0].category if hit else ""
        query_vectors = self._query_vectors(queries)
        item_vectors = self._item_vectors()
        collaborative = np.asarray(model.score(history, self._ids), dtype=np.float64)  # one forward pass per call
        excluded = np.zeros(len(self._ids), dtype=bool)
        excluded[[self._position[i] for i in exclude if i in self._position]] = True
        out: list[list[ItemHit]] = []
        for n in range(len(queries)):
            if grounded[n] is not None:  # the tag's promise: its category's items, then its parent's when it runs dry
                tiers = self._category_tiers(grounded[n], excluded, k)
                if sum(len(c) for _, c in tiers) < k:  # even the top level is dry (a one-item department the history
                    # holds): the tag's semantic neighbours elsewhere, said so, rather than nothing
                    taken = {i for _, c in tiers for i in c}
                    order = np.argsort(-(item_vectors @ query_vectors[n]), kind="stable")
                    tiers.append(("semantic", [self._ids[p] for p in order[~excluded[order]]
                                               if self._ids[p] not in taken][:depth]))
            else:
                # a free tag: its semantic neighbours over the whole catalogue (exact cosine: Chroma's approximate
                # top-`depth` differed between processes for the same query) and its nearest category's best
                similarities = item_vectors @ query_vectors[n]
                order = np.argsort(-similarities, kind="stable")
                neighbours = [self._ids[p] for p in order[~excluded[order]][:depth]]
                tiers = [("semantic", self._candidates(neighbours, nearest[n], excluded, collaborative, depth))]
            hits: list[ItemHit] = []
            for source, candidates in tiers:
                hits += self._ranked(candidates, query_vectors[n], item_vectors, collaborative, k - len(hits), source)
                if len(hits) >= k:
                    break
            out.append(hits)
        return out

    def _ranked(self, candidates: list[str], query_vector: np.ndarray, item_vectors: np.ndarray,
                collaborative: np.ndarray, k: int, source: str) -> list[ItemHit]:
        """The best `k` candidates by `beta · semantic + (1 − beta) · collaborative`, both min-max scaled within the
        candidates (ties keep candidate order)."""
        if not candidates or k <= 0:
            return []
        rows = [self._position[i] for i in candidates]
        similarity = item_vectors[rows] @ query_vector
        sem = minmax(similarity.tolist())
        col = minmax(collaborative[rows].tolist())
        mixed = [self.beta * s + (1.0 - self.beta) * c for s, c in zip(sem, col)]
        order = sorted(range(len(candidates)), key=lambda j: -mixed[j])  # stable: ties keep candidate order
        hits = []
        for j in order[:k]:
            item = self.dataset.items[candidates[j]]
            hits.append(ItemHit(item_id=item.item_id, title=item.title, category=item.category, source=source,
                                distance=float(1.0 - similarity[j]), semantic=sem[j], collaborative=col[j], score=mixed[j]))
        return hits

    def _category_tiers(self, category: str, excluded: np.ndarray, k: int) -> list[tuple[str, list[str]]]:
        """A grounded tag's candidates, tier by tier: every item at or below its category, then (while fewer than `k`
        are found) the items under each ancestor that the tiers before did not hold, up to the top level."""
        parts = category.split(" > ")
        tiers: list[tuple[str, list[str]]] = []
        taken: set[int] = set()
        found = 0
        for level in range(len(parts), 0, -1):
            positions = self._positions_under(" > ".join(parts[:level]))
            fresh = [int(p) for p in positions if not excluded[p] and int(p) not in taken]
            taken.update(fresh)
            tiers.append(("category" if level == len(parts) else "parent", [self._ids[p] for p in fresh]))
            found += len(fresh)
            if found >= k:
                break
        return tiers

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
        """The semantic retriever's: which category a tag names does not depend on the user."""
        return self.semantic.nearest_categories(queries, k)

    # -- internals -----------------------------------------------------------------------------------------------
    def _candidates(self, neighbours: list[str], category: str, excluded: np.ndarray, collaborative: np.ndarray,
                    depth: int) -> list[str]:
        """Semantic candidates first (in their order), then the category's best `depth` by collaborative score
        (`excluded`: a mask over the catalogue of the items never to return)."""
        chosen = neighbours[:depth]
        seen = set(chosen)
        inside = self._positions_under(category)
        inside = inside[~excluded[inside]]
        best = inside[np.argsort(-collaborative[inside], kind="stable")[:depth]]
        chosen += [self._ids[p] for p in best if self._ids[p] not in seen]
        return chosen

    def _positions_under(self, category: str) -> np.ndarray:
        """Catalogue positions of the items whose category path is `category` or below it (`A > B` covers `A > B`
        and `A > B > C`)."""
        return self._under.get(category, _NONE)

    def _query_vectors(self, queries: list[str]) -> np.ndarray:
        with self._lock:
            known = {q: self._queries[q] for q in queries if q in self._queries}
        missing = [q for q in dict.fromkeys(queries) if q not in known]
        if missing:  # embedded outside the lock: other threads' cached queries need not wait
            # one at a time: a batch's padding would move each vector by ~1e-7 and reorder near-ties between runs
            fresh = {query: np.asarray(self.embedder([query])[0], dtype=np.float64) for query in missing}
            known.update(fresh)
            with self._lock:
                if len(self._queries) + len(fresh) > QUERY_CACHE:
                    self._queries.clear()
                self._queries.update(fresh)
        return np.stack([known[q] for q in queries])

    def _item_vectors(self) -> np.ndarray:
        """Unit vectors of every item's indexed text, aligned with `self._ids`: read from Chroma when the semantic
        retriever is the Chroma index (the very vectors its distances come from), else embedded once."""
        if self._vectors is None:
            with self._vectors_lock:
                if self._vectors is None:
                    self._vectors = catalogue_vectors(self.dataset, self.semantic, self.embedder)
        return self._vectors


def catalogue_vectors(dataset: Dataset, semantic: Retriever, embedder: Embedder) -> np.ndarray:
    """Unit vectors of every item's indexed text (`Item.text()`), rows in `dataset.items` order: read from Chroma when
    `semantic` is the Chroma index (the very vectors its distances come from), else embedded (MiniLM by default)."""
    ids = list(dataset.items)
    if isinstance(semantic, CatalogueIndex):
        stored = semantic.items.get(ids=ids, include=["embeddings"])
        by_id = dict(zip(stored["ids"], stored["embeddings"]))
        if len(by_id) == len(ids):
            return np.asarray([by_id[i] for i in ids], dtype=np.float64)
        logger.warning("Chroma holds %d of %d item vectors; embedding the catalogue instead", len(by_id), len(ids))
    texts = [dataset.items[i].text() for i in ids]
    if not texts:
        return np.zeros((0, 1))
    return np.concatenate([np.asarray(embedder(texts[s : s + 256]), dtype=np.float64) for s in range(0, len(texts), 256)])
