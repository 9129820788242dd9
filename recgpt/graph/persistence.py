"""Checkpointing: the serializer that knows our state types, and the SQLite saver of durable runs.

LangGraph's msgpack serializer only rebuilds classes it is told about (unknown ones are warned about now and will be
refused later), so every pydantic model that lives in the graph state is registered here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from recgpt.schema import state
from recgpt.schema.calls import LLMCall

STATE_MODELS = (state.Persona, state.ProposedTag, state.FinalTag, state.RetrievedItem, state.TagRecommendation,
                state.ContextStats, state.NodeTiming, state.StyleGuideline, state.ItemExplanation,
                state.DimensionVerdict, state.Judgement, LLMCall)


def serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=[(cls.__module__, cls.__name__) for cls in STATE_MODELS])


@asynccontextmanager
async def sqlite_saver(path: Path) -> AsyncIterator[object]:
    """An `AsyncSqliteSaver` on `path` (created with its folder), with our serializer."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(path)) as conn:
        yield AsyncSqliteSaver(conn, serde=serializer())
