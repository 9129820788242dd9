"""recgpt: RecGPT-V2 LLM intent reasoning for recommendation, as a LangGraph agent graph served by vLLM.

Stable surface (documented with runnable snippets in docs/api.md)::

    from recgpt import Context, build_graph                      # the graph and its runtime knobs
    from recgpt import recommend, recommend_many, stream         # sync: one user, a batch, node updates
    from recgpt import arecommend, arecommend_many, astream      # the same, async
    from recgpt import ExpertPlugin, TagFilterPlugin             # plug-in agent nodes
    from recgpt import Retriever, UserSignals, ItemHit, CategoryHit  # a retrieval backend: build_graph(retriever=...)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
RUNNER = ("recommend", "recommend_many", "stream", "arecommend", "arecommend_many", "astream")
RETRIEVAL = ("Retriever", "RetrieverFactory", "UserSignals", "ItemHit", "CategoryHit")
__all__ = ["Context", "build_graph", *RUNNER, "ExpertPlugin", "TagFilterPlugin", *RETRIEVAL, "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import recgpt` stays cheap and free of import cycles.
    if name == "Context":
        from recgpt.schema.context import Context

        return Context
    if name == "build_graph":
        from recgpt.graph.builder import build_graph

        return build_graph
    if name in RUNNER:
        from recgpt import runner

        return getattr(runner, name)
    if name in {"ExpertPlugin", "TagFilterPlugin"}:
        from recgpt.graph import plugins

        return getattr(plugins, name)
    if name in RETRIEVAL:
        from recgpt.tools import retrieval

        return getattr(retrieval, name)
    raise AttributeError(name)
