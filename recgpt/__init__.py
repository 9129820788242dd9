"""recgpt: RecGPT-V2 LLM intent reasoning for recommendation, as a LangGraph agent graph served by vLLM.

Stable surface::

    from recgpt import Context, build_graph, arecommend, arecommend_many
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Context", "build_graph", "arecommend", "arecommend_many", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import recgpt` stays cheap and free of import cycles.
    if name == "Context":
        from recgpt.graph.context import Context

        return Context
    if name == "build_graph":
        from recgpt.graph.builder import build_graph

        return build_graph
    if name in {"arecommend", "arecommend_many"}:
        from recgpt import runner

        return getattr(runner, name)
    raise AttributeError(name)
