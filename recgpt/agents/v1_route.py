"""RecGPT-V1 route: interest mining, then tag prediction, both over the full context (two calls)."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model
from typing_extensions import TypedDict

from recgpt.agents.common import clean_text
from recgpt.agents.expert import expert_max_tokens, expert_schema
from recgpt.errors import InvalidModelOutput
from recgpt.prompts.v1 import MINING_INSTRUCTIONS, ROUTE_HEADER, ROUTES, TAG_INSTRUCTIONS
from recgpt.schema.context import Context
from recgpt.schema.state import NodeTiming, ProposedTag
from recgpt.services.resources import Resources
from recgpt.tools.llm import LLMRequestRejected, acall_structured, call_of, chat_model

INTERESTS_PER_ROUTE = 3


class RouteTask(TypedDict):
    """The payload of one `Send` to a route."""

    route: str
    route_index: int
    shared_prefix: str


def interests_schema(n: int) -> type[BaseModel]:
    return create_model("MinedInterests", interests=(list[str], Field(min_length=n, max_length=n)),
                        __doc__="Interests mined through one route's lens.")


def route_system_prompt(route: str, shared_prefix: str) -> str:
    """Route role first, then the context: V1's layout (no prefix shared across routes)."""
    return ROUTE_HEADER.format(route=route, lens=ROUTES[route]) + "\n\n" + shared_prefix


async def route_node(task: RouteTask, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    ctx = runtime.context
    started = time.perf_counter()
    route, index = task["route"], task["route_index"]
    endpoint = (await resources.aendpoints(ctx)).policy
    system = SystemMessage(content=route_system_prompt(route, task["shared_prefix"]))
    calls = []
    try:
        miner = chat_model(endpoint, ctx.planner_temperature, 40 * INTERESTS_PER_ROUTE + 30)
        mined, call = await acall_structured(miner, [system, HumanMessage(content=MINING_INSTRUCTIONS.format(route=route, n=INTERESTS_PER_ROUTE))],
                                             interests_schema(INTERESTS_PER_ROUTE), f"v1[{route}]:mine", endpoint.base_url, ctx.schema_attempts)
        calls.append(call)
        interests = "\n".join(f"- {clean_text(i, 80)}" for i in mined.interests)
        predictor = chat_model(endpoint, ctx.expert_temperature, expert_max_tokens(ctx.tags_per_expert, None))
        prompt = [system, HumanMessage(content=TAG_INSTRUCTIONS.format(route=route, interests=interests, m=ctx.tags_per_expert))]
        output, call = await acall_structured(predictor, prompt, expert_schema(ctx.tags_per_expert), f"v1[{route}]:predict",
                                              endpoint.base_url, ctx.schema_attempts)
        calls.append(call)
    except (InvalidModelOutput, LLMRequestRejected) as exc:
        # One route failing must not sink the run: it contributes no tags, flagged.
        return {"calls": [*calls, call_of(exc, f"v1[{route}]")], "flags": [f"v1_route_{route}_failed: {exc}"],
                "timings": [NodeTiming(node=f"v1[{route}]", seconds=time.perf_counter() - started)]}
    tags = [ProposedTag(tag=clean_text(t.tag, 70), rationale=clean_text(t.rationale, 120), persona_index=index, persona=route)
            for t in output.tags if clean_text(t.tag, 70)]
    return {"tag_pool": tags, "calls": calls, "timings": [NodeTiming(node=f"v1[{route}]", seconds=time.perf_counter() - started)]}
