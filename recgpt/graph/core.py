"""The core nodes of the RecGPT-V2 graph: name -> how to make the node, in one table.

The builder adds every entry (then wires the edges), and plug-ins may not take these names, so the list of core
nodes is this table and nothing else. A new core node is one entry here plus its edges in `builder.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from recgpt.agents.arbiter import arbiter_node
from recgpt.agents.expert import expert_node
from recgpt.agents.planner import planner_node
from recgpt.graph.explain import build_explain_subgraph
from recgpt.graph.judge import build_judge_subgraph
from recgpt.graph.nodes import compress_node, retrieve_node
from recgpt.graph.retry import LLM_RETRY
from recgpt.services.resources import Resources

NodeMaker = Callable[[Resources], tuple[Any, dict[str, Any]]]
"""(the graph's resources) -> (the node, `add_node` options). A maker, not a node: every node is bound to the
resources of the graph being built (its dataset, retriever and registry), so nothing is looked up by name."""


def _join(state: Any) -> dict[str, Any]:
    """Runs once after every explanation finished (the join before the judges)."""
    return {}


CORE_NODES: dict[str, NodeMaker] = {
    "compress": lambda resources: (partial(compress_node, resources=resources), {}),
    "planner": lambda resources: (partial(planner_node, resources=resources), {"retry_policy": LLM_RETRY}),
    "expert": lambda resources: (partial(expert_node, resources=resources), {}),
    "arbiter": lambda resources: (partial(arbiter_node, resources=resources), {}),
    "retrieve": lambda resources: (partial(retrieve_node, resources=resources), {}),
    "explain": lambda resources: (build_explain_subgraph(resources), {}),
    "explained": lambda resources: (_join, {}),
    "judge": lambda resources: (build_judge_subgraph(resources), {}),
}
