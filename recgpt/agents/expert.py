"""Distributed Expert: one persona in (via `Send`), M interest tags out."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from recgpt.agents.common import clean_text, endpoint_of, messages
from recgpt.errors import InvalidModelOutput
from recgpt.graph.context import Context
from recgpt.graph.state import ExpertTask, NodeTiming, ProposedTag
from recgpt.prompts.expert import EXPERT_INSTRUCTIONS
from recgpt.tools.llm import LLMRequestRejected, acall_structured, call_of, chat_model

TOKENS_PER_TAG = 70


class ExpertTag(BaseModel):
    tag: str = Field(min_length=2, max_length=70, description="Modifier + core product word.")
    rationale: str = Field(max_length=120, description="One sentence citing history or situation.")


@lru_cache(maxsize=16)
def expert_schema(m: int) -> type[BaseModel]:
    return create_model("ExpertOutput", tags=(list[ExpertTag], Field(min_length=m, max_length=m)),
                        __doc__="Interest tags for one persona.")


async def expert_node(task: ExpertTask, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    started = time.perf_counter()
    persona, index = task["persona"], task["persona_index"]
    endpoint = endpoint_of(ctx)
    model = chat_model(endpoint, ctx.expert_temperature, TOKENS_PER_TAG * ctx.tags_per_expert + 60,
                       None if ctx.seed is None else ctx.seed + 1 + index)
    prompt = messages(
        task["shared_prefix"],
        EXPERT_INSTRUCTIONS.format(persona_name=persona.name, persona_focus=persona.focus, m=ctx.tags_per_expert),
    )
    agent = f"expert[{index}]"
    try:
        output, call = await acall_structured(model, prompt, expert_schema(ctx.tags_per_expert), agent,
                                              endpoint.base_url, ctx.schema_attempts)
    except (InvalidModelOutput, LLMRequestRejected) as exc:
        # One expert failing must not sink the run: its persona contributes no tags, flagged.
        return {"calls": [call_of(exc, agent)], "flags": [f"{agent}_failed: {exc}"],
                "timings": [NodeTiming(node=agent, seconds=time.perf_counter() - started)]}
    tags = [
        ProposedTag(tag=clean_text(t.tag, 70), rationale=clean_text(t.rationale, 120), persona_index=index, persona=persona.name)
        for t in output.tags
        if clean_text(t.tag, 70)
    ]
    return {"tag_pool": tags, "calls": [call], "timings": [NodeTiming(node=agent, seconds=time.perf_counter() - started)]}
