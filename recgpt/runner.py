"""Run the graph for users: the programmatic entry point the CLI (and later eval) builds on."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

from recgpt.errors import RecGPTError
from recgpt.graph import Context, build_graph
from recgpt.graph.persistence import sqlite_saver
from recgpt.services.policy_notice import awarn_policy_notice
from recgpt.services.resources import Resources, resolve
from recgpt.settings import get_settings

RunStatus = Literal["new", "resumed", "finished earlier"]


def graph_for(dataset: str | None, graph: Any = None) -> Any:
    """`graph`, or a graph built for `dataset` (None: RECGPT_DATASET) through the process's registry."""
    return graph if graph is not None else build_graph(resolve(dataset))


def payload_of(user_id: str, dataset: str | None, split: str, **situation: Any) -> dict[str, Any]:
    """A run's input: `dataset` only when named (a graph serves the dataset it was built for)."""
    return {"user_id": str(user_id), "split": split, **({"dataset": dataset} if dataset else {}), **situation}


async def arecommend(user_id: str, dataset: str | None = None, split: str = "full", ctx: Context | None = None,
                     date: str | None = None, weather: str | None = None, trend: str | None = None,
                     graph: Any = None) -> dict[str, Any]:
    """Run the whole graph for one user and return the final state. `graph` None builds one for `dataset` (None:
    RECGPT_DATASET); pass a built graph to run many users on the same resources.

    The first run on a dataset whose served policy was trained on another one (or chosen for it by a policy check)
    warns once (`recgpt.services.policy_notice.PolicyNotice`), as the CLI prints it."""
    ctx = ctx or Context()
    graph = graph_for(dataset, graph)
    await awarn_policy_notice(ctx, dataset or get_settings().dataset)
    return await graph.ainvoke(payload_of(user_id, dataset, split, date=date, weather=weather, trend=trend), context=ctx)


async def arecommend_many(user_ids: list[str], dataset: str | None = None, split: str = "full",
                          ctx: Context | None = None, concurrency: int = 4, graph: Any = None,
                          **kwargs: Any) -> list[dict[str, Any]]:
    """Run several users concurrently (bounded), results in input order."""
    ctx = ctx or Context()
    graph = graph_for(dataset, graph)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(user_id: str) -> dict[str, Any]:
        async with gate:
            return await arecommend(user_id, dataset, split, ctx, graph=graph, **kwargs)

    return list(await asyncio.gather(*(one(u) for u in user_ids)))


def recommend(user_id: str, dataset: str | None = None, split: str = "full", ctx: Context | None = None,
              **kwargs: Any) -> dict[str, Any]:
    """Synchronous `arecommend` (for scripts and notebooks without an event loop)."""
    return asyncio.run(arecommend(user_id, dataset, split, ctx, **kwargs))


def recommend_many(user_ids: list[str], dataset: str | None = None, split: str = "full", ctx: Context | None = None,
                   concurrency: int = 4, **kwargs: Any) -> list[dict[str, Any]]:
    """Synchronous `arecommend_many`."""
    return asyncio.run(arecommend_many(user_ids, dataset, split, ctx, concurrency, **kwargs))


async def astream(user_id: str, dataset: str | None = None, split: str = "full", ctx: Context | None = None,
                  date: str | None = None, weather: str | None = None, trend: str | None = None,
                  graph: Any = None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Yield `(node, update)` as each node (subgraph nodes included, as "explain:write") finishes.

    The update is what the node wrote to the state (e.g. the planner's `personas`, one expert's `tag_pool`).
    """
    ctx = ctx or Context()
    graph = graph_for(dataset, graph)
    payload = payload_of(user_id, dataset, split, date=date, weather=weather, trend=trend)
    async for namespace, chunk in graph.astream(payload, context=ctx, stream_mode="updates", subgraphs=True):
        for node, update in chunk.items():
            prefix = ":".join(part.split(":")[0] for part in namespace)
            yield (f"{prefix}:{node}" if prefix else node), (update or {})


def stream(user_id: str, dataset: str | None = None, split: str = "full", ctx: Context | None = None,
           **kwargs: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Synchronous `astream`: collects the updates in a private event loop, yielding them as they arrive."""
    updates: queue.Queue[tuple[str, dict[str, Any]] | BaseException | None] = queue.Queue()

    async def pump() -> None:
        async for item in astream(user_id, dataset, split, ctx, **kwargs):
            updates.put(item)

    def worker() -> None:
        try:
            asyncio.run(pump())
        except BaseException as exc:  # re-raised in the caller's thread
            updates.put(exc)
        else:
            updates.put(None)

    threading.Thread(target=worker, daemon=True, name="recgpt-stream").start()
    while (item := updates.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def default_checkpoint_db() -> Path:
    return get_settings().home / "checkpoints.sqlite"


async def arecommend_durable(user_id: str, thread: str, resources: Resources, split: str = "full",
                             ctx: Context | None = None, db_path: Path | None = None, plugins: list[Any] | None = None,
                             **situation: Any) -> tuple[dict[str, Any], RunStatus]:
    """Run one user on a durable thread (SQLite checkpointer): a run killed mid-flight resumes where it stopped.

    Checkpoints are written synchronously after every step, and every finished task's writes as it finishes, so
    the experts that completed before a SIGKILL are not asked again. A thread holds one user's run: the same
    thread id again returns a finished run as it was (use a new id for a fresh run), resumes an unfinished one,
    and refuses another user or dataset. The runtime Context is not part of the checkpoint: a resumed run uses
    the options it is resumed with. `resources` and `plugins` are passed to `build_graph`.
    """

    ctx = ctx or Context()
    async with sqlite_saver(Path(db_path or default_checkpoint_db())) as saver:
        graph = build_graph(resources, checkpointer=saver, plugins=plugins)
        dataset = resources.dataset.name
        config = {"configurable": {"thread_id": thread}}
        snapshot = await graph.aget_state(config)
        stored = snapshot.values or {}
        if stored:
            theirs = (stored.get("user_id"), stored.get("dataset"), stored.get("split"))
            if theirs != (str(user_id), dataset, split):
                raise RecGPTError(f"thread {thread!r} holds user {theirs[0]} of {theirs[1]}/{theirs[2]}, not user "
                                  f"{user_id} of {dataset}/{split}; use another --thread")
            if not snapshot.next:
                return stored, "finished earlier"
            return await graph.ainvoke(None, config, context=ctx, durability="sync"), "resumed"
        payload = payload_of(user_id, dataset, split, **situation)
        return await graph.ainvoke(payload, config, context=ctx, durability="sync"), "new"
