"""Run the graph for users: the programmatic entry point the CLI (and later eval) builds on."""

from __future__ import annotations

import asyncio
from typing import Any

from recgpt.errors import EndpointError
from recgpt.graph import Context, build_graph
from recgpt.tools.server import is_healthy


def check_endpoint(ctx: Context) -> None:
    """Fail fast, with one line naming the URL, when the LLM endpoint is not up."""
    if not is_healthy(ctx.base_url):
        raise EndpointError(
            f"LLM endpoint {ctx.base_url} is not reachable; start it with `recgpt serve` "
            "(or point RECGPT_BASE_URL at any OpenAI-compatible server)"
        )


async def arecommend(user_id: str, dataset: str = "office", split: str = "full", ctx: Context | None = None,
                     date: str | None = None, weather: str | None = None, trend: str | None = None,
                     graph: Any = None) -> dict[str, Any]:
    """Run the whole graph for one user and return the final state."""
    ctx = ctx or Context()
    graph = graph or build_graph()
    payload = {"user_id": str(user_id), "dataset": dataset, "split": split, "date": date,
               "weather": weather, "trend": trend}
    return await graph.ainvoke(payload, context=ctx)


async def arecommend_many(user_ids: list[str], dataset: str = "office", split: str = "full",
                          ctx: Context | None = None, concurrency: int = 4, **kwargs: Any) -> list[dict[str, Any]]:
    """Run several users concurrently (bounded), results in input order."""
    ctx = ctx or Context()
    graph = build_graph()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(user_id: str) -> dict[str, Any]:
        async with gate:
            return await arecommend(user_id, dataset, split, ctx, graph=graph, **kwargs)

    return list(await asyncio.gather(*(one(u) for u in user_ids)))
