"""The RecGPT-V2 agent graph: state, runtime context, nodes and wiring."""

from recgpt.graph.builder import build_graph
from recgpt.graph.context import Context

__all__ = ["build_graph", "Context"]
