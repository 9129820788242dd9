"""The Chroma backend of the `Retriever` seam: `CatalogueIndex`, two persistent collections per dataset.

Keyed by the dataset's content hash, so a changed catalogue gets a fresh index: `items` (title + category path of
every item) and `categories` (every distinct category path). Built once, reused across processes. Open it through a
`Registry` (`recgpt.services.resources`), which keeps one object per folder: opening the same Chroma folder twice at
once in a process breaks Chroma's client.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.progress import Progress

from recgpt.data.dataset import Dataset
from recgpt.tools.retrieval.protocol import CategoryHit, ItemHit, UserSignals

BATCH = 256


class CatalogueIndex:
    """Chroma-backed retrieval over one dataset's catalogue: `RECGPT_RETRIEVER=chroma`, and the semantic side of the
    default `collaborative` retriever.

    Get it through `get_index` (or `chroma_factory`), not by constructing it: opening the same Chroma folder twice
    in a process breaks Chroma's client (see `get_index`)."""

    def __init__(self, dataset: Dataset, index_dir: Path, embedding_function: Any, show_progress: bool = False,
                 server_url: str = "") -> None:
        """`embedding_function`: a Chroma embedding function (the registry's MiniLM); never Chroma's default, which
        downloads an ONNX model and fails offline."""
        # deferred: chromadb takes ~1 s to import and only this backend needs it (`import recgpt.graph` stays free of it)
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.dataset = dataset
        self._embedding_function = embedding_function
        self._leaf_paths: list[str] | None = None
        self._sizes: dict[str, int] | None = None
        if server_url:  # a Chroma server shared by many processes (`recgpt index serve`)
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

    def _embed(self, queries: list[str]) -> list[list[float]]:
        """Each query embedded on its own (see `Embedder.each`): its neighbours do not depend on the other queries of
        the call, so a run's ranking repeats."""
        return [[float(x) for x in self._embedding_function([query])[0]] for query in queries]

    def _collection(self, name: str):  # -> chromadb Collection
        return self._client.get_or_create_collection(
            name=name, embedding_function=self._embedding_function, metadata={"hnsw:space": "cosine"}
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
        result = self.items.query(query_embeddings=self._embed(queries), n_results=n, where=where,
                                  include=["metadatas", "distances"])
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
            query_embeddings=self._embed(queries), n_results=min(k, self.categories.count()), include=["distances"]
        )
        return [
            [CategoryHit(category=c, distance=float(d)) for c, d in zip(ids, dists)]
            for ids, dists in zip(result["ids"], result["distances"])
        ]


def _safe(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40].strip("-_")
    return cleaned or "dataset"




ChromaRetriever = CatalogueIndex
"""The Chroma implementation of `Retriever`, under the name that says so."""
