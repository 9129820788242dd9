"""Wiring of the RecGPT-V2 agent graph.

compress -> planner -(Send × K)-> expert -> arbiter -> retrieve -> END
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send

from recgpt.agents.arbiter import arbiter_node
from recgpt.agents.expert import expert_node
from recgpt.agents.planner import planner_node
from recgpt.errors import EndpointError
from recgpt.graph.context import Context
from recgpt.graph.nodes import compress_node, retrieve_node
from recgpt.graph.state import RecInput, RecState

LLM_RETRY = RetryPolicy(max_attempts=2, initial_interval=1.0, backoff_factor=2.0, jitter=True,
                        retry_on=EndpointError)
"""Node-level retry for endpoint errors that outlived the openai client's own retries."""


def fan_out_experts(state: RecState) -> list[Send]:
    """One `Send` per persona; every expert gets the same shared prefix (prefix-cache friendly)."""
    return [
        Send("expert", {"persona": persona, "persona_index": index, "shared_prefix": state["shared_prefix"]})
        for index, persona in enumerate(state.get("personas", []))
    ]


def build_graph(checkpointer=None):  # -> CompiledStateGraph
    builder = StateGraph(RecState, context_schema=Context, input_schema=RecInput)
    builder.add_node("compress", compress_node)
    builder.add_node("planner", planner_node, retry_policy=LLM_RETRY)
    builder.add_node("expert", expert_node, retry_policy=LLM_RETRY)
    builder.add_node("arbiter", arbiter_node, retry_policy=LLM_RETRY)
    builder.add_node("retrieve", retrieve_node)
    builder.add_edge(START, "compress")
    builder.add_edge("compress", "planner")
    builder.add_conditional_edges("planner", fan_out_experts, ["expert"])
    builder.add_edge("expert", "arbiter")
    builder.add_edge("arbiter", "retrieve")
    builder.add_edge("retrieve", END)
    return builder.compile(checkpointer=checkpointer, name="recgpt-v2")
