"""The explanation subgraph (meta-prompting): style guideline -> explanation, for one item.

Compiled with each graph (bound to its resources) and added to the main graph as the node "explain", which the main graph fans out
with one `Send` per explained item. In 'template' mode the style stage is skipped (RecGPT-V1); in 'grounded' mode
no LLM is asked: the sentence is made by code from the user's history (`agents.explainer.grounded_explanation`).
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime

from recgpt.agents.explainer import style_node, write_node
from recgpt.schema.context import Context
from recgpt.schema.subgraphs import ExplainInput, ExplainOutput, ExplainState
from recgpt.services.resources import Resources


def route_style(state: ExplainState) -> str:
    """Meta-prompting plans a style first; the V1 template and the code-made 'grounded' sentence need none."""
    return "style" if get_runtime(Context).context.explanation_mode == "meta" else "write"


def build_explain_subgraph(resources: Resources):  # -> CompiledStateGraph
    builder = StateGraph(ExplainState, context_schema=Context, input_schema=ExplainInput, output_schema=ExplainOutput)
    builder.add_node("style", partial(style_node, resources=resources))
    builder.add_node("write", partial(write_node, resources=resources))
    builder.add_conditional_edges(START, route_style, ["style", "write"])
    builder.add_edge("style", "write")
    builder.add_edge("write", END)
    return builder.compile(name="explain")
