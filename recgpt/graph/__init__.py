"""The RecGPT-V2 agent graph's wiring: nodes from `recgpt.agents`, state from `recgpt.schema`, compiled here.

`Context` is re-exported for convenience; it lives in `recgpt.schema.context`.
"""

from __future__ import annotations

from recgpt.graph.builder import build_graph
from recgpt.schema.context import Context

__all__ = ["build_graph", "Context"]
