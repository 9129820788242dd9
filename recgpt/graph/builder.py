"""Wiring of the RecGPT-V2 agent graph.

compress -> planner -(Send × K)-> expert -> arbiter -> retrieve
         -(Send × item)-> explain [subgraph] -> explained -(Send × tag/explanation)-> judge [subgraph] -> END

The explanation and judge stages are compiled subgraphs (nested in Studio's xray view); the
runtime Context switches them off or picks their modes, and the routers skip them when off.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Send

from recgpt.agents.arbiter import arbiter_node
from recgpt.agents.expert import expert_node
from recgpt.agents.planner import planner_node
from recgpt.graph.context import Context
from recgpt.graph.explain import build_explain_subgraph
from recgpt.graph.judge import build_judge_subgraph
from recgpt.graph.nodes import compress_node, retrieve_node
from recgpt.graph.retry import LLM_RETRY
from recgpt.graph.state import RecInput, RecState


def fan_out_experts(state: RecState) -> list[Send]:
    """One `Send` per persona; every expert gets the same shared prefix (prefix-cache friendly)."""
    return [
        Send("expert", {"persona": persona, "persona_index": index, "shared_prefix": state["shared_prefix"]})
        for index, persona in enumerate(state.get("personas", []))
    ]


def fan_out_explanations(state: RecState) -> list[Send] | str:
    """One `Send` per explained item: the top `explain_items_per_tag` items of every tag."""
    ctx = get_runtime(Context).context
    if ctx.explanation_mode == "off":
        return "explained"
    situation = state["context_stats"].environment if state.get("context_stats") else ""
    sends = [
        Send("explain", {"shared_prefix": state["shared_prefix"], "situation": situation, "tag": rec.tag, "item": item})
        for rec in state.get("recommendations", [])
        for item in rec.items[: ctx.explain_items_per_tag]
    ]
    return sends or "explained"


def fan_out_judges(state: RecState) -> list[Send] | str:
    """One `Send` per final tag and per written explanation."""
    if get_runtime(Context).context.judge_mode == "off":
        return END
    prefix = state["shared_prefix"]
    sends = [
        Send("judge", {"shared_prefix": prefix, "target_kind": "tag", "target_id": t.tag, "text": t.tag, "title": "", "category": ""})
        for t in state.get("tags", [])
    ]
    sends += [
        Send("judge", {"shared_prefix": prefix, "target_kind": "explanation", "target_id": e.item_id, "text": e.text,
                       "title": e.title, "category": e.category})
        for e in state.get("explanations", [])
        if e.text
    ]
    return sends or END


def build_graph(checkpointer=None):  # -> CompiledStateGraph
    builder = StateGraph(RecState, context_schema=Context, input_schema=RecInput)
    builder.add_node("compress", compress_node)
    builder.add_node("planner", planner_node, retry_policy=LLM_RETRY)
    builder.add_node("expert", expert_node, retry_policy=LLM_RETRY)
    builder.add_node("arbiter", arbiter_node, retry_policy=LLM_RETRY)
    builder.add_node("retrieve", retrieve_node)
    builder.add_node("explain", build_explain_subgraph())
    builder.add_node("explained", lambda state: {})  # join: runs once after every explanation finished
    builder.add_node("judge", build_judge_subgraph())
    builder.add_edge(START, "compress")
    builder.add_edge("compress", "planner")
    builder.add_conditional_edges("planner", fan_out_experts, ["expert"])
    builder.add_edge("expert", "arbiter")
    builder.add_edge("arbiter", "retrieve")
    builder.add_conditional_edges("retrieve", fan_out_explanations, ["explain", "explained"])
    builder.add_edge("explain", "explained")
    builder.add_conditional_edges("explained", fan_out_judges, ["judge", END])
    builder.add_edge("judge", END)
    return builder.compile(checkpointer=checkpointer, name="recgpt-v2")
