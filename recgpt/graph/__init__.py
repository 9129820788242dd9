"""The RecGPT-V2 agent graph: state, runtime context, nodes and wiring.

`build_graph` is imported lazily: agent modules import `recgpt.graph.context`/`state`, and the
builder imports the agents.
"""

from __future__ import annotations

from typing import Any

from recgpt.graph.context import Context

__all__ = ["build_graph", "Context"]


def __getattr__(name: str) -> Any:
    if name == "build_graph":
        from recgpt.graph.builder import build_graph

        return build_graph
    raise AttributeError(name)
