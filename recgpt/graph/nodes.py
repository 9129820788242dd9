"""The graph's non-LLM nodes: context compression (the shared prefix) and retrieval.

Both are bound to the graph's `Resources` (`build_graph(resources)`): the dataset and retriever they use were resolved
once, where the graph was built, and every blocking call they make runs off the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime

from recgpt.data import Split
from recgpt.errors import RecGPTError
from recgpt.schema.context import Context
from recgpt.schema.state import NodeTiming, RecState, TagRecommendation
from recgpt.services.prefix import build_shared_prefix
from recgpt.services.resources import Resources
from recgpt.tools.retrieval.protocol import CategoryHit, UserSignals, search


def check_dataset(state: RecState, resources: Resources) -> None:
    """A run's input may name its dataset; it must be the one the graph was built for."""
    named = state.get("dataset")
    if named and named not in resources.names():
        raise RecGPTError(f"this graph serves dataset {resources.dataset.name!r}, not {named!r}: build one with "
                          f"build_graph(resolve({named!r}))")


async def build_context(state: RecState, runtime: Runtime[Context], resources: Resources,
                        build: Any = build_shared_prefix) -> dict[str, Any]:
    """The state update of a context node: `build` (a `build_shared_prefix`-like coroutine) for the run's user, timed."""
    started = time.perf_counter()
    if not state.get("user_id"):
        raise RecGPTError("input needs a user_id")
    check_dataset(state, resources)
    out = await build(runtime.context, resources, str(state["user_id"]), state.get("split") or Split.full,
                      state.get("date"), state.get("weather"), state.get("trend"))
    return {**out, "dataset": resources.dataset.name,
            "timings": [NodeTiming(node="compress", seconds=time.perf_counter() - started)]}


async def compress_node(state: RecState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """Build the one prompt prefix every agent of this run shares, within the token budget."""
    return await build_context(state, runtime, resources)


def distinct_items(per_tag: list[list[Any]], k: int) -> list[list[Any]]:
    """Each tag's first `k` hits that no earlier tag shows (tags in rank order): one user's list never repeats an item.
    (The demo showed one popular ream of paper under three of a user's five tags.)"""
    shown: set[str] = set()
    out = []
    for hits in per_tag:
        kept = [h for h in hits if h.item_id not in shown][:k]
        shown.update(h.item_id for h in kept)
        out.append(kept)
    return out


async def retrieve_node(state: RecState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """Each final tag -> nearest category and top items, never an item already in the history or under an earlier
    tag (each tag asks deep enough that the items earlier tags took can be skipped)."""
    ctx = runtime.context
    started = time.perf_counter()
    tags = state.get("tags", [])
    retriever = resources.retriever
    queries = [t.tag for t in tags]
    history = list(state.get("history_item_ids", []))
    # the split says which past the history is: a user-aware retriever scores with the model of that split
    user = UserSignals(user_id=str(state.get("user_id") or ""), history_item_ids=tuple(history),
                       split=Split(state.get("split") or Split.full).value)
    grounded = [t.category for t in tags]  # a grounded tag searches inside its category, which is its category
    deep = await asyncio.to_thread(search, retriever, queries, ctx.items_per_tag * max(1, len(queries)), set(history), user, grounded)
    hits = distinct_items(deep, ctx.items_per_tag)
    free = [n for n, c in enumerate(grounded) if not c]
    nearest = await asyncio.to_thread(retriever.nearest_categories, [queries[n] for n in free], 1) if free else []
    cats: list[list[CategoryHit]] = [[CategoryHit(category=c, distance=0.0)] if c else [] for c in grounded]
    for n, hit in zip(free, nearest):
        cats[n] = hit
    recommendations = [
        TagRecommendation(tag=tag, category=c[0].category if c else None, category_distance=c[0].distance if c else None,
                          items=list(item_hits))
        for tag, item_hits, c in zip(tags, hits, cats)
    ]
    # a small catalogue can run out: the items the history and the earlier tags hold are never shown again, so a
    # later tag may keep none; it stays in the answer (it is the arbiter's choice) and the flag says why it is empty
    empty = [f"retrieve: tag {rec.tag.tag!r} has no item left (the history and the earlier tags hold every match)"
             for rec in recommendations if not rec.items]
    return {"recommendations": recommendations, "flags": empty,
            "timings": [NodeTiming(node="retrieve", seconds=time.perf_counter() - started)]}
