"""The core nodes of the RecGPT-V2 graph: name -> how to make the node, in one table.

The builder adds every entry (then wires the edges), and plug-ins may not take these names, so the list of core
nodes is this table and nothing else. A new core node is one entry here plus its edges in `builder.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recgpt.agents.arbiter import arbiter_node
from recgpt.agents.expert import expert_node
from recgpt.agents.planner import planner_node
from recgpt.graph.explain import build_explain_subgraph
from recgpt.graph.judge import build_judge_subgraph
from recgpt.graph.nodes import compress_node, make_retrieve_node
from recgpt.graph.retry import LLM_RETRY
from recgpt.tools.retrieval import RetrieverFactory

NodeMaker = Callable[[RetrieverFactory | None], tuple[Any, dict[str, Any]]]
"""(retriever factory) -> (the node, `add_node` options). A maker, not a node: subgraphs compile and the retrieve
node resolves its backend only when a graph is built."""


def _join(state: Any) -> dict[str, Any]:
    """Runs once after every explanation finished (the join before the judges)."""
    return {}


CORE_NODES: dict[str, NodeMaker] = {
    "compress": lambda retriever: (compress_node, {}),
    "planner": lambda retriever: (planner_node, {"retry_policy": LLM_RETRY}),
    "expert": lambda retriever: (expert_node, {}),
    "arbiter": lambda retriever: (arbiter_node, {}),
    "retrieve": lambda retriever: (make_retrieve_node(retriever), {}),
    "explain": lambda retriever: (build_explain_subgraph(), {}),
    "explained": lambda retriever: (_join, {}),
    "judge": lambda retriever: (build_judge_subgraph(), {}),
}
