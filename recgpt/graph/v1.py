"""RecGPT-V1 multi-route baseline graph (for `recgpt bench` and `recgpt eval`-style comparisons).

compress -(Send × route)-> route [mine interests -> predict tags, full context each] -> union -> retrieve -> END

`compress` builds V2's compressed context, or with `Context.v1_history = 'raw'` the paper's V1 context: the whole raw
history (every interaction, title and category, bounded by the model's window, oldest dropped first).

Routes are independent: each re-reads the whole context behind its own role prompt. `union` merges
their tags round-robin (route order), drops exact duplicates and records the cross-route duplicate
rate (share of candidate tags that another route had already proposed).
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from recgpt.agents.arbiter import round_robin
from recgpt.agents.v1_route import route_node
from recgpt.graph.nodes import build_context, retrieve_node
from recgpt.graph.retry import LLM_RETRY
from recgpt.prompts.v1 import ROUTES
from recgpt.schema.context import Context
from recgpt.schema.state import FinalTag, ProposedTag, RecInput, RecState
from recgpt.services.prefix import build_raw_prefix, build_shared_prefix
from recgpt.services.resources import Resources, resolve


class V1State(RecState, total=False):
    route_duplicate_rate: float
    route_candidates: Annotated[list[int], operator.add]


async def v1_compress_node(state: RecState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """V2's compressed context, or V1's raw history (`Context.v1_history`)."""
    raw = runtime.context.v1_history == "raw"
    return await build_context(state, runtime, resources, build_raw_prefix if raw else build_shared_prefix)


def fan_out_routes(state: RecState) -> list[Send]:
    return [Send("route", {"route": route, "route_index": i, "shared_prefix": state["shared_prefix"]})
            for i, route in enumerate(ROUTES)]


def _key(tag: ProposedTag) -> str:
    return " ".join(tag.tag.lower().split())


def union_node(state: V1State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Union of every route's tags, round-robin over routes, exact duplicates dropped, first N kept."""
    pool = state.get("tag_pool", [])
    merged: list[ProposedTag] = []
    seen: set[str] = set()
    for tag in round_robin(pool):
        if _key(tag) not in seen:
            seen.add(_key(tag))
            merged.append(tag)
    duplicate_rate = 1 - len(seen) / len(pool) if pool else 0.0
    n = runtime.context.num_tags
    tags = [FinalTag(**t.model_dump(), rank=i + 1) for i, t in enumerate(merged[:n])]
    return {"tags": tags, "route_duplicate_rate": duplicate_rate}


def build_v1_graph(resources: Resources | None = None, *, checkpointer=None):  # -> CompiledStateGraph
    """The compiled V1 baseline, bound to `resources` as in `build_graph` (give both the same, so that a V1-vs-V2
    comparison reads and retrieves alike)."""
    resources = resources or resolve()
    builder = StateGraph(V1State, context_schema=Context, input_schema=RecInput)
    builder.add_node("compress", partial(v1_compress_node, resources=resources))
    builder.add_node("route", partial(route_node, resources=resources), retry_policy=LLM_RETRY)
    builder.add_node("union", union_node)
    builder.add_node("retrieve", partial(retrieve_node, resources=resources))
    builder.add_edge(START, "compress")
    builder.add_conditional_edges("compress", fan_out_routes, ["route"])
    builder.add_edge("route", "union")
    builder.add_edge("union", "retrieve")
    builder.add_edge("retrieve", END)
    return builder.compile(checkpointer=checkpointer, name="recgpt-v1")
