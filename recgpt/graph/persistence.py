"""Checkpointing: the serializer that knows our state types, and the SQLite saver of durable runs.

LangGraph's msgpack serializer only rebuilds classes it is told about (unknown ones are warned about now and will be
refused later), so every pydantic model that lives in the graph state is registered here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_args, get_type_hints

import aiosqlite
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from pydantic import BaseModel
from typing_extensions import is_typeddict

from recgpt.schema.state import ExpertTask, RecState
from recgpt.schema.subgraphs import DimensionTask, ExplainState, JudgeState


def models_in(*types: Any) -> tuple[type[BaseModel], ...]:
    """Every pydantic model reachable from `types`: TypedDict fields, generic arguments, nested model fields."""
    found: dict[type[BaseModel], None] = {}

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in found:
                return
            found[tp] = None
            for field in tp.model_fields.values():
                visit(field.annotation)
        elif is_typeddict(tp):
            for hint in get_type_hints(tp).values():
                visit(hint)
        for arg in get_args(tp):
            visit(arg)

    for tp in types:
        visit(tp)
    return tuple(found)


STATE_MODELS = models_in(RecState, ExpertTask, ExplainState, JudgeState, DimensionTask)
"""Derived from the state types, so a model added to the state is checkpointable without another list to edit."""


def serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=[(cls.__module__, cls.__name__) for cls in STATE_MODELS])


@asynccontextmanager
async def sqlite_saver(path: Path) -> AsyncIterator[object]:
    """An `AsyncSqliteSaver` on `path` (created with its folder), with our serializer."""

    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(path)) as conn:
        yield AsyncSqliteSaver(conn, serde=serializer())
