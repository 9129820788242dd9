"""The retrieval seam: what the graph and the evaluations ask of a search backend, and nothing else.

A `Retriever` maps tags to catalogue items and categories over one dataset. The backends (`chroma`,
`collaborative`, or a plug-in `pkg.module:callable`) live beside this module and are resolved by
`recgpt.tools.retrieval.backends`; this module imports none of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from recgpt.data.dataset import Dataset
from recgpt.schema.state import RetrievedItem

ItemHit = RetrievedItem
"""One retrieved item: the graph state's `RetrievedItem` (one type from the backend to the trace). The name stays for
backends written against it."""


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


def _takes_categories(kind: type) -> bool:
    try:
        return "categories" in inspect.signature(kind.search_items).parameters
    except (TypeError, ValueError):
        return False


RetrieverFactory = Callable[[Dataset], Retriever]
"""Makes the retriever of a dataset. Called once per graph run (and per evaluation), so a factory whose retriever
is expensive to build should cache it per dataset, as the Chroma one does."""


RetrieverFactory = Callable[[Dataset], Retriever]
"""Makes the retriever of a dataset. Called once per run's resources (`recgpt.services.resources`), which keep what
it returns for the dataset's lifetime in their registry."""
