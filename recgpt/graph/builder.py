"""Wiring of the RecGPT-V2 agent graph.

compress -> planner -(Send × K)-> expert [+ plug-in experts] -> arbiter [-> plug-in tag filters] -> retrieve
         -(Send × item)-> explain [subgraph] -> explained -(Send × tag/explanation)-> judge [subgraph] -> END

The explanation and judge stages are compiled subgraphs (nested in Studio's xray view); the
runtime Context switches them off or picks their modes, and the routers skip them when off.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Send

from recgpt.graph.core import CORE_NODES
from recgpt.graph.plugins import ExpertPlugin, Plugin, TagFilterPlugin, configured_plugins, validate
from recgpt.schema.context import MAX_PERSONAS, Context
from recgpt.schema.state import RecInput, RecState
from recgpt.services.resources import Resources, resolve


def fan_out_experts(state: RecState, plugin_experts: Sequence[str] = ()) -> list[Send]:
    """One `Send` per persona, plus one per plug-in expert; every expert gets the same shared prefix
    (prefix-cache friendly). Plug-in experts run even when the planner produced no persona."""
    sends = [
        Send("expert", {"persona": persona, "persona_index": index, "shared_prefix": state["shared_prefix"],
                        "history_item_ids": list(state.get("history_item_ids", [])),
                        "category_shares": dict(state.get("category_shares") or {})})
        for index, persona in enumerate(state.get("personas", []))
    ]
    return sends + [Send(name, {"shared_prefix": state["shared_prefix"]}) for name in plugin_experts]


def fan_out_explanations(state: RecState) -> list[Send] | str:
    """One `Send` per explained item: the top `explain_items_per_tag` items of every tag."""
    ctx = get_runtime(Context).context
    if ctx.explanation_mode == "off":
        return "explained"
    situation = state["context_stats"].environment if state.get("context_stats") else ""
    history = list(state.get("history_item_ids", []))
    sends = [
        Send("explain", {"shared_prefix": state["shared_prefix"], "situation": situation, "tag": rec.tag, "item": item,
                         "history_item_ids": history})
        for rec in state.get("recommendations", [])
        for item in rec.items[: ctx.explain_items_per_tag]
    ]
    return sends or "explained"


def fan_out_judges(state: RecState) -> list[Send] | str:
    """One `Send` per final tag and per written explanation."""
    if get_runtime(Context).context.judge_mode == "off":
        return END
    prefix = state["shared_prefix"]
    history = list(state.get("history_item_ids", []))
    sends = [
        Send("judge", {"shared_prefix": prefix, "target_kind": "tag", "target_id": t.tag, "text": t.tag, "title": "",
                       "category": t.category or "", "history_item_ids": history})
        for t in state.get("tags", [])
    ]
    sends += [
        Send("judge", {"shared_prefix": prefix, "target_kind": "explanation", "target_id": e.item_id, "text": e.text,
                       "title": e.title, "category": e.category, "history_item_ids": history})
        for e in state.get("explanations", [])
        if e.text
    ]
    return sends or END


def build_graph(resources: Resources | None = None, *, checkpointer=None,
                plugins: Sequence[Plugin] | None = None):  # -> CompiledStateGraph
    """The compiled graph, bound to `resources` (its dataset, retriever and registry: `resolve("office")`); None
    resolves RECGPT_DATASET and RECGPT_RETRIEVER through the process's registry. `plugins=None` loads the configured
    plug-ins (RECGPT_PLUGINS and the `recgpt.agents` entry points); pass a list (possibly empty) to choose them."""
    resources = resources or resolve()
    plugins = configured_plugins() if plugins is None else validate(plugins)
    experts = [p for p in plugins if isinstance(p, ExpertPlugin)]
    filters = [p for p in plugins if isinstance(p, TagFilterPlugin)]
    expert_names = [p.name for p in experts]
    builder = StateGraph(RecState, context_schema=Context, input_schema=RecInput)
    for name, make in CORE_NODES.items():
        node, options = make(resources)
        builder.add_node(name, node, **options)
    for offset, plugin in enumerate(experts):
        # persona indices after the planner's (at most MAX_PERSONAS) keep the arbiter's round-robin order stable
        builder.add_node(plugin.name, plugin.node(MAX_PERSONAS + offset, resources))
    for plugin in filters:
        builder.add_node(plugin.name, plugin.node())
    builder.add_edge(START, "compress")
    builder.add_edge("compress", "planner")
    builder.add_conditional_edges("planner", partial(fan_out_experts, plugin_experts=expert_names), ["expert", *expert_names])
    for name in ["expert", *expert_names]:
        builder.add_edge(name, "arbiter")
    chain = ["arbiter", *(p.name for p in filters), "retrieve"]
    for before, after in zip(chain, chain[1:]):
        builder.add_edge(before, after)
    builder.add_conditional_edges("retrieve", fan_out_explanations, ["explain", "explained"])
    builder.add_edge("explain", "explained")
    builder.add_conditional_edges("explained", fan_out_judges, ["judge", END])
    builder.add_edge("judge", END)
    return builder.compile(checkpointer=checkpointer, name="recgpt-v2")
