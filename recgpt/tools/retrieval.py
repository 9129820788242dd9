"""Retrieval: tag -> catalogue items and tag -> nearest category, behind the `Retriever` seam.

The graph's retrieve node and the evaluations ask a `Retriever` (a protocol: `search_items`,
`nearest_categories`), never Chroma directly, so that another backend (a vector service, a
user-aware ranker, an in-memory fake in the unit tests) plugs in without touching them. Which one
is used is a setting: `RECGPT_RETRIEVER` is `collaborative` (the default: semantic similarity mixed with SASRec's
next-item score for the user, `recgpt.tools.collaborative`), `chroma` (semantic similarity alone) or
`pkg.module:callable`,
resolved by `retriever_factory` into a `RetrieverFactory` (Dataset -> Retriever); `build_graph`
takes such a factory too.

The Chroma implementation, `CatalogueIndex` (alias `ChromaRetriever`), keeps two persistent
collections per dataset, keyed by the dataset's content hash so that a changed catalogue gets a
fresh index: `items` (title + category path of every item) and `categories` (every distinct
category path). Built once, reused across processes.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from rich.progress import Progress

from recgpt.data.dataset import Dataset
from recgpt.errors import RecGPTError
from recgpt.tools.embeddings import embedding_function

BATCH = 256


@dataclass(frozen=True)
class ItemHit:
    """One retrieved item. `distance`: how far its text is from the query (Chroma: cosine distance; smaller is closer).

    The hit list's order is the ranking. Chroma ranks by `distance` alone; a user-aware backend that mixes signals
    also fills the terms it ranked by, so that a trace shows why an item came first: `semantic` and `collaborative`
    (each min-max normalised to [0, 1] within the query's candidates) and `score`, their mix (higher is better).
    Backends that rank by distance alone leave them None."""

    item_id: str
    title: str
    category: str
    distance: float
    semantic: float | None = None
    collaborative: float | None = None
    score: float | None = None


@dataclass(frozen=True)
class CategoryHit:
    category: str
    distance: float


@dataclass(frozen=True)
class UserSignals:
    """Who the items are retrieved for, beyond the `exclude` set: for user-aware scoring (the collaborative
    retriever re-ranks by the user's history); backends may ignore it, Chroma does.

    `split` says which past the user is at: `full` when serving (the whole history), `test`/`validation` when an
    evaluation holds a target out. A backend that learns from other users' histories must learn from that split's
    training sequences only, or it would have seen the targets it is scored on."""

    user_id: str
    history_item_ids: tuple[str, ...] = ()
    split: str = "full"


@runtime_checkable
class Retriever(Protocol):
    """Retrieval over one dataset's catalogue: the seam between the graph/evaluations and a search backend.

    A retriever is bound to the dataset its factory was called with; item ids, titles and category paths in its
    hits are that dataset's. Smaller `distance` means closer (Chroma: cosine distance); callers only rely on the
    order of the hits, not on the scale. Methods are synchronous and may block (the graph calls them in a worker
    thread) and must be safe to call from several threads at once."""

    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset(),
                     user: UserSignals | None = None,
                     categories: Sequence[str | None] | None = None) -> list[list[ItemHit]]:
        """Per query (in order), its top `k` items, best first, none of them in `exclude` (the user's history).

        `categories` (grounded tags): per query, the catalogue category path it was grounded in, or None; a
        backend searches inside it (the path or below). Callers pass it through `search`, which leaves it out for a
        backend whose `search_items` predates it."""
        ...

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
        """Per query (in order), its `k` nearest category paths of the catalogue, best first."""
        ...


def search(retriever: Retriever, queries: list[str], k: int, exclude: set[str], user: UserSignals | None,
           categories: Sequence[str | None] | None = None) -> list[list[ItemHit]]:
    """`retriever.search_items`, with `categories` only when some query is grounded and the backend takes them (a
    plug-in retriever written before grounding keeps working: its tags are then searched as free text)."""
    if categories and any(categories) and _takes_categories(type(retriever)):
        return retriever.search_items(queries, k, exclude, user, categories=categories)
    return retriever.search_items(queries, k, exclude, user)


@lru_cache(maxsize=64)
def _takes_categories(kind: type) -> bool:
    try:
        return "categories" in inspect.signature(kind.search_items).parameters
    except (TypeError, ValueError):
        return False


RetrieverFactory = Callable[[Dataset], Retriever]
"""Makes the retriever of a dataset. Called once per graph run (and per evaluation), so a factory whose retriever
is expensive to build should cache it per dataset, as the Chroma one does."""


class CatalogueIndex:
    """Chroma-backed retrieval over one dataset's catalogue: `RECGPT_RETRIEVER=chroma`, and the semantic side of the
    default `collaborative` retriever.

    Get it through `get_index` (or `chroma_factory`), not by constructing it: opening the same Chroma folder twice
    in a process breaks Chroma's client (see `get_index`)."""

    def __init__(self, dataset: Dataset, index_dir: Path, show_progress: bool = False, server_url: str = "") -> None:
        # Imported here: only the Chroma backend needs chromadb, and `import recgpt.graph` stays free of it.
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.dataset = dataset
        self._leaf_paths: list[str] | None = None
        self._sizes: dict[str, int] | None = None
        if server_url:  # a Chroma server shared by many processes (`recgpt index serve`)
            from urllib.parse import urlparse

            url = urlparse(server_url)
            self._client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000, ssl=url.scheme == "https",
                                               settings=ChromaSettings(anonymized_telemetry=False))
        else:
            index_dir.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(
                path=str(index_dir), settings=ChromaSettings(anonymized_telemetry=False)
            )
        key = f"{_safe(dataset.name)}-{dataset.content_hash()}"
        self.items = self._collection(f"items-{key}")
        self.categories = self._collection(f"cats-{key}")
        self._ensure_built(show_progress)

    def _collection(self, name: str):  # -> chromadb Collection
        return self._client.get_or_create_collection(
            name=name, embedding_function=embedding_function(), metadata={"hnsw:space": "cosine"}
        )

    def _ensure_built(self, show_progress: bool) -> None:
        items = list(self.dataset.items.values())
        categories = self.dataset.categories()
        if self.items.count() == len(items) and self.categories.count() == len(categories):
            return
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task(f"indexing {self.dataset.name} catalogue", total=len(items) + len(categories))
            for start in range(0, len(items), BATCH):
                chunk = items[start : start + BATCH]
                self.items.upsert(
                    ids=[i.item_id for i in chunk],
                    documents=[i.text() for i in chunk],
                    metadatas=[{"title": i.title, "category": i.category} for i in chunk],
                )
                progress.advance(task, len(chunk))
            for start in range(0, len(categories), BATCH):
                chunk = categories[start : start + BATCH]
                self.categories.upsert(ids=chunk, documents=chunk)
                progress.advance(task, len(chunk))

    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset(),
                     user: UserSignals | None = None,
                     categories: Sequence[str | None] | None = None) -> list[list[ItemHit]]:
        """Top-k items per query, skipping `exclude` (the user's history); a grounded query (its entry in
        `categories`) only among the items at or below its category path.

        `user` is accepted for the `Retriever` protocol and ignored: the ranking is the query's embedding distance
        alone (the same for every user)."""
        if not queries:
            return []
        grounded = list(categories or [None] * len(queries))
        free = [n for n, c in enumerate(grounded) if not c or not self._leaves_under(c)]
        out: list[list[ItemHit]] = [[] for _ in queries]
        if free:  # one batched query for every ungrounded tag
            for n, hits in zip(free, self._query([queries[n] for n in free], k, exclude, None)):
                out[n] = hits
        for n, category in enumerate(grounded):
            if n not in free:
                hits = self._query([queries[n]], k, exclude, self._leaves_under(str(category)))[0]
                if len(hits) < k:  # a small category (or one the history exhausts): the nearest items elsewhere fill up
                    seen = {h.item_id for h in hits}
                    hits += [h for h in self._query([queries[n]], k, exclude | seen, None)[0] if h.item_id not in seen]
                out[n] = hits[:k]
        return out

    def _leaves_under(self, category: str) -> list[str]:
        """The item category strings at or below `category` (a path, or a prefix of paths)."""
        if self._leaf_paths is None:
            self._leaf_paths = sorted({item.category for item in self.dataset.items.values()})
        return [c for c in self._leaf_paths if c == category or c.startswith(category + " > ")]

    def _query(self, queries: list[str], k: int, exclude: set[str], leaves: list[str] | None) -> list[list[ItemHit]]:
        where = {"category": {"$in": leaves}} if leaves else None
        pool = self.items.count() if where is None else sum(self._category_sizes().get(c, 0) for c in leaves or [])
        n = min(pool, k + len(exclude & self.dataset.items.keys()))
        if n == 0:
            return [[] for _ in queries]
        result = self.items.query(query_texts=queries, n_results=n, where=where, include=["metadatas", "distances"])
        out: list[list[ItemHit]] = []
        for ids, metas, dists in zip(result["ids"], result["metadatas"], result["distances"]):
            hits = [
                ItemHit(item_id=i, title=str(m["title"]), category=str(m.get("category", "")), distance=float(d))
                for i, m, d in zip(ids, metas, dists)
                if i not in exclude
            ]
            out.append(hits[:k])
        return out

    def _category_sizes(self) -> dict[str, int]:
        if self._sizes is None:
            sizes: dict[str, int] = {}
            for item in self.dataset.items.values():
                sizes[item.category] = sizes.get(item.category, 0) + 1
            self._sizes = sizes
        return self._sizes

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
        """The k nearest category paths per query, by cosine distance."""
        if not queries or self.categories.count() == 0:
            return [[] for _ in queries]
        result = self.categories.query(
            query_texts=queries, n_results=min(k, self.categories.count()), include=["distances"]
        )
        return [
            [CategoryHit(category=c, distance=float(d)) for c, d in zip(ids, dists)]
            for ids, dists in zip(result["ids"], result["distances"])
        ]


def _safe(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40].strip("-_")
    return cleaned or "dataset"


_CACHE: dict[tuple[str, str, str], CatalogueIndex] = {}
_CACHE_LOCK = threading.Lock()


def get_index(dataset: Dataset, index_dir: Path, show_progress: bool = False, server_url: str = "") -> CatalogueIndex:
    """One index object per (dataset, content, folder) per process.

    Locked: the retrieval node calls this from worker threads, and concurrent first runs (a load test, a batch)
    would otherwise open the same Chroma folder several times at once, which Chroma's client does not survive
    (`KeyError` on its path, half-initialised Rust bindings; found by `recgpt load`).

    Chroma-specific: code that only searches asks `get_retriever` (whatever backend is configured); this stays for
    building the Chroma index ahead of time with a progress bar (`recgpt demo`)."""
    key = (dataset.name, dataset.content_hash(), server_url or str(index_dir))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = CatalogueIndex(dataset, index_dir, show_progress=show_progress, server_url=server_url)
        return _CACHE[key]


ChromaRetriever = CatalogueIndex
"""The Chroma implementation of `Retriever`, under the name that says so."""

CHROMA = "chroma"
COLLABORATIVE = "collaborative"


def chroma_factory(index_dir: Path | None = None, show_progress: bool = False) -> RetrieverFactory:
    """The Chroma `RetrieverFactory`: one cached `CatalogueIndex` per dataset (see `get_index`).

    `index_dir=None` means the configured one (`$RECGPT_HOME/chroma`), read when a retriever is made, not when the
    factory is: a graph built at import time (Studio) still follows RECGPT_HOME set later."""

    def make(dataset: Dataset) -> Retriever:
        from recgpt.settings import get_settings

        settings = get_settings()
        return get_index(dataset, index_dir or settings.index_dir, show_progress=show_progress, server_url=settings.chroma_url)

    return make


def retriever_factory(spec: str | None = None) -> RetrieverFactory:
    """Resolve a retriever setting into a factory; `spec=None` reads RECGPT_RETRIEVER.

    `chroma` and `collaborative` (with RECGPT_RETRIEVAL_BETA / RECGPT_RETRIEVAL_DEPTH) are built in;
    `pkg.module:callable` names a callable taking a `Dataset` and returning a
    `Retriever` (a class bound to a dataset qualifies). It is imported now, so a bad setting fails when the graph
    or evaluation is built, before any LLM call is spent; what it returns is checked at each call. The working
    directory is importable, as for plug-ins (RECGPT_PLUGINS)."""
    from recgpt.settings import get_settings

    if spec is None:
        spec = get_settings().retriever
    spec = spec.strip()
    if spec == CHROMA:
        return chroma_factory()
    if spec == COLLABORATIVE:
        from recgpt.tools.collaborative import collaborative_factory  # here: it imports this module

        settings = get_settings()
        return collaborative_factory(settings.retrieval_beta, settings.retrieval_depth)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RecGPTError(f"retriever {spec!r} must be {CHROMA!r}, {COLLABORATIVE!r} or look like pkg.module:callable "
                          "(RECGPT_RETRIEVER)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the import error printed
        raise RecGPTError(f"retriever {spec!r}: cannot import {module_name} ({type(exc).__name__}: {reason})") from None
    target: object = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise RecGPTError(f"retriever {spec!r}: {module_name} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise RecGPTError(f"retriever {spec!r}: {attr!r} is a {type(target).__name__}, not a callable taking a Dataset")
    make = cast(Callable[[Dataset], object], target)

    def checked(dataset: Dataset) -> Retriever:
        retriever = make(dataset)
        if not isinstance(retriever, Retriever):
            raise RecGPTError(f"retriever {spec!r} returned a {type(retriever).__name__!r}, not a Retriever "
                              "(needs search_items and nearest_categories)")
        return retriever

    return checked


def prepare_retriever(dataset: Dataset, split: str = "full", show_progress: bool = True) -> None:
    """Build what the configured retriever needs for `split` now, with progress bars, instead of inside the first
    user's retrieval: the Chroma index (seconds to a minute, once per catalogue) and, for `collaborative`, the SASRec
    model of that split (minutes, once per dataset content and split; cached under RECGPT_HOME/collab). The graph's
    retrieval then finds both in this process's caches. A custom backend (`pkg.module:callable`) is just made."""
    from recgpt.settings import get_settings

    settings = get_settings()
    spec = settings.retriever.strip()
    if spec in (CHROMA, COLLABORATIVE):
        chroma_factory(show_progress=show_progress)(dataset)
    if spec == COLLABORATIVE:
        from recgpt.tools.sequential import collaborative_model

        collaborative_model(dataset, split, settings.collab_dir, show_progress=show_progress)
    if spec not in (CHROMA, COLLABORATIVE):
        retriever_factory(spec)(dataset)


def get_retriever(dataset: Dataset) -> Retriever:
    """The configured retriever (RECGPT_RETRIEVER) of a dataset: what evaluations and training rewards use."""
    return retriever_factory()(dataset)
