"""The graph's non-LLM nodes: context compression (the shared prefix) and retrieval.

The retrieve node is made per graph (`make_retrieve_node`) around a `RetrieverFactory`, so that the backend is
chosen where the graph is built (`build_graph(retriever=...)`, else RECGPT_RETRIEVER), not hard-wired to Chroma."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from recgpt.data import Split, load_dataset
from recgpt.errors import RecGPTError
from recgpt.schema.context import Context
from recgpt.schema.state import NodeTiming, RecState, RetrievedItem, TagRecommendation
from recgpt.services.prefix import build_shared_prefix
from recgpt.tools.retrieval import CategoryHit, RetrieverFactory, UserSignals, retriever_factory, search


async def build_context(state: RecState, runtime: Runtime[Context], build: Any = build_shared_prefix) -> dict[str, Any]:
    """The state update of a context node: `build` (a `build_shared_prefix`-like coroutine) for the run's user, timed."""
    started = time.perf_counter()
    if not state.get("user_id"):
        raise RecGPTError("input needs a user_id")
    out = await build(runtime.context, str(state["user_id"]), state.get("dataset") or "office",
                      state.get("split") or Split.full, state.get("date"), state.get("weather"), state.get("trend"))
    return {**out, "timings": [NodeTiming(node="compress", seconds=time.perf_counter() - started)]}


async def compress_node(state: RecState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Build the one prompt prefix every agent of this run shares, within the token budget."""
    return await build_context(state, runtime)


RetrieveNode = Callable[[RecState, Runtime[Context]], Awaitable[dict[str, Any]]]


def make_retrieve_node(factory: RetrieverFactory | None = None) -> RetrieveNode:
    """The retrieve node, asking the retriever that `factory` makes for the run's dataset.

    `factory=None` resolves the configured one (RECGPT_RETRIEVER) now, so a bad setting fails when the graph is
    built rather than after a run's LLM calls."""
    make = factory or retriever_factory()

    async def retrieve_node(state: RecState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Each final tag -> nearest category and top items, never an item already in the history."""
        ctx = runtime.context
        started = time.perf_counter()
        tags = state.get("tags", [])
        dataset = load_dataset(state.get("dataset") or "office")
        retriever = await asyncio.to_thread(make, dataset)  # may build an index on first use: off the event loop
        queries = [t.tag for t in tags]
        history = list(state.get("history_item_ids", []))
        # the split says which past the history is: a user-aware retriever scores with the model of that split
        user = UserSignals(user_id=str(state.get("user_id") or ""), history_item_ids=tuple(history),
                           split=Split(state.get("split") or Split.full).value)
        grounded = [t.category for t in tags]  # a grounded tag searches inside its category, which is its category
        hits = await asyncio.to_thread(search, retriever, queries, ctx.items_per_tag, set(history), user, grounded)
        free = [n for n, c in enumerate(grounded) if not c]
        nearest = await asyncio.to_thread(retriever.nearest_categories, [queries[n] for n in free], 1) if free else []
        cats: list[list[CategoryHit]] = [[CategoryHit(category=c, distance=0.0)] if c else [] for c in grounded]
        for n, hit in zip(free, nearest):
            cats[n] = hit
        recommendations = [
            TagRecommendation(
                tag=tag,
                category=c[0].category if c else None,
                category_distance=c[0].distance if c else None,
                items=[RetrievedItem(item_id=h.item_id, title=h.title, category=h.category, distance=h.distance,
                                     semantic=h.semantic, collaborative=h.collaborative, score=h.score)
                       for h in item_hits],
            )
            for tag, item_hits, c in zip(tags, hits, cats)
        ]
        return {"recommendations": recommendations,
                "timings": [NodeTiming(node="retrieve", seconds=time.perf_counter() - started)]}

    return retrieve_node
