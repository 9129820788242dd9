"""Distributed Expert: one persona in (via `Send`), M interest tags out."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from recgpt.agents.common import AgentCall, clean_text, messages
from recgpt.prompts.expert import EXPERT_INSTRUCTIONS
from recgpt.schema.context import Context
from recgpt.schema.state import ExpertTask, Persona, ProposedTag
from recgpt.text_fields import clip_sentence, english_text, tag_text

TOKENS_PER_TAG = 70

TRAINING_PERSONA = Persona(name="the user as the whole history shows", focus="what this user is likely to need next")
"""The persona of the trained policy's prompt: one history-wide persona (one derived from the future would leak the
target). `recgpt train` builds its prompts with it and `recgpt eval --method expert` asks exactly that prompt."""


def training_expert_instructions(m: int) -> str:
    """The expert's instructions for the training persona: shared by training prompts and `eval --method expert`."""
    return EXPERT_INSTRUCTIONS.format(persona_name=TRAINING_PERSONA.name, persona_focus=TRAINING_PERSONA.focus, m=m)


RATIONALE_CHARS = 60


class ExpertTag(BaseModel):
    """Bounded English text under server-enforced patterns: a tag cannot paste a category path ('>' and ':'
    are not allowed), and a tag with its rationale costs at most ~40 completion tokens."""

    tag: tag_text(60, description="Modifier + product type, as a shopper would search.")  # type: ignore[valid-type]
    rationale: english_text(RATIONALE_CHARS, min_chars=0, description="A few words citing history or situation.")  # type: ignore[valid-type]


@lru_cache(maxsize=16)
def expert_schema(m: int) -> type[BaseModel]:
    return create_model("ExpertOutput", tags=(list[ExpertTag], Field(min_length=m, max_length=m)),
                        __doc__="Interest tags for one persona.")


async def propose_tags(shared_prefix: str, instructions: str, schema: type[BaseModel], agent: str, persona_index: int,
                       persona: str, ctx: Context, temperature: float, seed_offset: int) -> dict[str, Any]:
    """One expert-style call: shared prefix + instructions -> `tag_pool` entries (or a flagged failure).

    Shared by the persona experts and plug-in experts (`recgpt.graph.plugins.ExpertPlugin`). `schema` must have a
    `tags` list whose items carry `tag` (and optionally `rationale`).
    """
    run = AgentCall(agent, ctx)
    output = await run.ask(agent, messages(shared_prefix, instructions), schema, temperature,
                           TOKENS_PER_TAG * ctx.tags_per_expert + 60, None if ctx.seed is None else ctx.seed + seed_offset)
    if output is None:  # one expert failing must not sink the run: its persona contributes no tags, flagged
        return run.update()
    tags = [
        ProposedTag(tag=clean_text(t.tag, 70), rationale=clip_sentence(getattr(t, "rationale", "") or "", RATIONALE_CHARS),
                    persona_index=persona_index, persona=persona)
        for t in getattr(output, "tags", [])
        if clean_text(t.tag, 70)
    ]
    return run.update(tag_pool=tags)


async def expert_node(task: ExpertTask, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    persona, index = task["persona"], task["persona_index"]
    instructions = EXPERT_INSTRUCTIONS.format(persona_name=persona.name, persona_focus=persona.focus, m=ctx.tags_per_expert)
    return await propose_tags(task["shared_prefix"], instructions, expert_schema(ctx.tags_per_expert), f"expert[{index}]",
                              index, persona.name, ctx, ctx.expert_temperature, 1 + index)
