"""recgpt: RecGPT-V2 LLM intent reasoning for recommendation, as a LangGraph agent graph served by vLLM.

Stable surface (documented with runnable snippets in docs/api.md)::

    from recgpt import Context, build_graph, resolve             # the graph, its resources and its runtime knobs
    from recgpt import Registry, Resources                       # what a process keeps across runs; one graph's parts
    from recgpt import recommend, recommend_many, stream         # sync: one user, a batch, node updates
    from recgpt import arecommend, arecommend_many, astream      # the same, async
    from recgpt import ExpertPlugin, TagFilterPlugin             # plug-in agent nodes
    from recgpt import Retriever, UserSignals, ItemHit, CategoryHit  # a retrieval backend: resolve(dataset, retriever=...)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Context": "recgpt.schema.context",
    "build_graph": "recgpt.graph.builder",
    **dict.fromkeys(("resolve", "Registry", "Resources", "default_registry"), "recgpt.services.resources"),
    **dict.fromkeys(("recommend", "recommend_many", "stream", "arecommend", "arecommend_many", "astream"), "recgpt.runner"),
    **dict.fromkeys(("ExpertPlugin", "TagFilterPlugin"), "recgpt.graph.plugins"),
    **dict.fromkeys(("Retriever", "RetrieverFactory", "UserSignals", "ItemHit", "CategoryHit"), "recgpt.tools.retrieval.protocol"),
}
"""Public name -> the module that defines it, imported on first use (PEP 562): `import recgpt` stays cheap (no
langgraph, no torch) and free of import cycles."""

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'recgpt' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
