"""Tag -> catalogue items and tag -> nearest category, through persistent Chroma collections.

Two collections per dataset, keyed by the dataset's content hash so that a changed catalogue
gets a fresh index: `items` (title + category path of every item) and `categories` (every
distinct category path). Built once, reused across processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings
from rich.progress import Progress

from recgpt.data.dataset import Dataset
from recgpt.tools.embeddings import embedding_function

BATCH = 256


@dataclass(frozen=True)
class ItemHit:
    item_id: str
    title: str
    category: str
    distance: float


@dataclass(frozen=True)
class CategoryHit:
    category: str
    distance: float


class CatalogueIndex:
    """Chroma-backed retrieval over one dataset's catalogue."""

    def __init__(self, dataset: Dataset, index_dir: Path, show_progress: bool = False) -> None:
        self.dataset = dataset
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

    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset()) -> list[list[ItemHit]]:
        """Top-k items per query, skipping `exclude` (the user's history)."""
        if not queries:
            return []
        total = self.items.count()
        n = min(total, k + len(exclude & self.dataset.items.keys()))
        if n == 0:
            return [[] for _ in queries]
        result = self.items.query(query_texts=queries, n_results=n, include=["metadatas", "distances"])
        out: list[list[ItemHit]] = []
        for ids, metas, dists in zip(result["ids"], result["metadatas"], result["distances"]):
            hits = [
                ItemHit(item_id=i, title=str(m["title"]), category=str(m.get("category", "")), distance=float(d))
                for i, m, d in zip(ids, metas, dists)
                if i not in exclude
            ]
            out.append(hits[:k])
        return out

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
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


def get_index(dataset: Dataset, index_dir: Path, show_progress: bool = False) -> CatalogueIndex:
    """One index object per (dataset, content, folder) per process.

    Locked: the retrieval node calls this from worker threads, and concurrent first runs (a load test, a batch)
    would otherwise open the same Chroma folder several times at once, which Chroma's client does not survive
    (`KeyError` on its path, half-initialised Rust bindings; found by `recgpt load`)."""
    key = (dataset.name, dataset.content_hash(), str(index_dir))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = CatalogueIndex(dataset, index_dir, show_progress=show_progress)
        return _CACHE[key]
