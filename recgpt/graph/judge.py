"""The judge subgraph (Agent-as-a-Judge): per-dimension evaluators in parallel, then the Senior Reviewer.

Input: one tag or one explanation (with the user's shared context). 'agent' mode fans out one
`Send` per dimension and aggregates with the Senior Reviewer's rule; 'single' mode is the
RecGPT-V1 one-call judge. Compiled with each graph (bound to its resources) and added to the main graph as the node "judge".
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Send

from recgpt.agents.judge import dimension_node, dimensions_of, review_node, single_judge_node
from recgpt.schema.context import Context
from recgpt.schema.subgraphs import JudgeInput, JudgeOutput, JudgeState
from recgpt.services.resources import Resources


def fan_out_dimensions(state: JudgeState) -> list[Send] | str:
    if get_runtime(Context).context.judge_mode == "single":
        return "single"
    task = {key: state[key] for key in JudgeInput.__annotations__ if key in state}
    return [Send("dimension", {**task, "dimension": name}) for name in dimensions_of(state["target_kind"])]


def build_judge_subgraph(resources: Resources):  # -> CompiledStateGraph
    builder = StateGraph(JudgeState, context_schema=Context, input_schema=JudgeInput, output_schema=JudgeOutput)
    builder.add_node("dimension", partial(dimension_node, resources=resources))
    builder.add_node("review", review_node)
    builder.add_node("single", partial(single_judge_node, resources=resources))
    builder.add_conditional_edges(START, fan_out_dimensions, ["dimension", "single"])
    builder.add_edge("dimension", "review")
    builder.add_edge("review", END)
    builder.add_edge("single", END)
    return builder.compile(name="judge")
