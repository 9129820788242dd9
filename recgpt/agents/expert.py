"""Distributed Expert: one persona in (via `Send`), M interest tags out."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from recgpt.agents.common import AgentCall, clean_text, messages
from recgpt.data import Dataset
from recgpt.prompts.evidence import EVIDENCE_EXPERT_INSTRUCTION
from recgpt.prompts.expert import EXPERT_INSTRUCTIONS, GROUNDING_INSTRUCTION, RATIONALE_INSTRUCTION
from recgpt.prompts.explore import EXPLORE_INSTRUCTION
from recgpt.schema.context import Context
from recgpt.schema.state import ExpertTask, Persona, ProposedTag
from recgpt.services.resources import Endpoints, Resources
from recgpt.text_fields import clip_sentence, english_text, tag_text
from recgpt.tools.retrieval.grounding import CategoryVocabulary

TOKENS_PER_TAG = 40
"""Completion tokens of one tag and its JSON keys, without rationale or category (`expert_max_tokens`)."""

TRAINING_PERSONA = Persona(name="the user as the whole history shows", focus="what this user is likely to need next")
"""The persona of the trained policy's prompt: one history-wide persona (one derived from the future would leak the
target). `recgpt train` builds its prompts with it and `recgpt eval --method expert` asks exactly that prompt."""


def expert_instructions(persona_name: str, persona_focus: str, m: int, grounded: bool = False, rationale: bool = True) -> str:
    text = EXPERT_INSTRUCTIONS.format(persona_name=persona_name, persona_focus=persona_focus, m=m)
    return text + ("\n" + RATIONALE_INSTRUCTION if rationale else "") + ("\n" + GROUNDING_INSTRUCTION if grounded else "")


def training_expert_instructions(m: int, grounded: bool = False, rationale: bool = False) -> str:
    """The expert's instructions for the training persona: shared by training prompts and `eval --method expert`.
    Without the rationale instruction by default, as the graph serves (`Context.expert_rationale_chars` 0): a policy
    is trained and measured on the answer it gives when served."""
    return expert_instructions(TRAINING_PERSONA.name, TRAINING_PERSONA.focus, m, grounded, rationale)


RATIONALE_CHARS = 60


TAG_MAX_CHARS = 60


class ExpertTag(BaseModel):
    """Bounded English text under server-enforced patterns: a tag cannot paste a category path ('>' and ':'
    are not allowed), and a tag with its rationale costs at most ~40 completion tokens."""

    tag: tag_text(TAG_MAX_CHARS, description="Modifier + product type, as a shopper would search.")  # type: ignore[valid-type]
    rationale: english_text(RATIONALE_CHARS, min_chars=0, description="A few words citing history or situation.")  # type: ignore[valid-type]


def tag_model(categories: tuple[str, ...] | None = None, rationale_chars: int = RATIONALE_CHARS) -> type[BaseModel]:
    """One tag of the expert's answer: `ExpertTag`, with a `category` first when `categories` is given (an enum the
    server's grammar enforces: the free text is then written knowing the category it must fit), and without its
    rationale when `rationale_chars` is 0 (a decode cut: `Context.expert_rationale_chars`)."""
    if categories is None and rationale_chars == RATIONALE_CHARS:
        return ExpertTag
    fields: dict[str, Any] = {}
    if categories:
        fields["category"] = (Literal[categories], Field(description="One category name from the catalogue list."))  # type: ignore[valid-type]
    fields["tag"] = (ExpertTag.model_fields["tag"].annotation, ExpertTag.model_fields["tag"])
    if rationale_chars:
        fields["rationale"] = (english_text(rationale_chars, min_chars=0, description="A few words citing history or situation."), ...)
    return create_model("GroundedExpertTag" if categories else "ExpertTag", **fields, __doc__=ExpertTag.__doc__)


def expert_schema(m: int, categories: tuple[str, ...] | None = None, rationale_chars: int = RATIONALE_CHARS) -> type[BaseModel]:
    """Exactly m tags; with `categories` (a grounded run) each tag also names one of them."""
    return create_model("ExpertOutput", tags=(list[tag_model(categories, rationale_chars)], Field(min_length=m, max_length=m)),  # type: ignore[misc]
                        __doc__="Interest tags for one persona.")


def expert_max_tokens(m: int, vocabulary: CategoryVocabulary | None, rationale_chars: int = RATIONALE_CHARS) -> int:
    """Completion budget of one expert call: ~40 tokens a tag with its JSON keys, ~1 token per 2 characters of
    rationale when one is asked for (70 a tag with the 60-character rationale), plus its category path when grounded
    (a path is written whole; ~1 token per 3 characters of the longest one)."""
    per_tag = TOKENS_PER_TAG + rationale_chars // 2 + (vocabulary.longest_chars // 3 + 6 if vocabulary is not None else 0)
    return per_tag * m + 60


def grounded_expert_schema(m: int, vocabulary: CategoryVocabulary | None, rationale_chars: int = RATIONALE_CHARS) -> type[BaseModel]:
    return expert_schema(m, vocabulary.labels if vocabulary is not None else None, rationale_chars)


async def propose_tags(shared_prefix: str, instructions: str, schema: type[BaseModel], agent: str, persona_index: int,
                       persona: str, ctx: Context, temperature: float, seed_offset: int, endpoints: Endpoints,
                       vocabulary: CategoryVocabulary | None = None, role: str = "policy") -> dict[str, Any]:
    """One expert-style call: shared prefix + instructions -> `tag_pool` entries (or a flagged failure).

    Shared by the persona experts and plug-in experts (`recgpt.graph.plugins.ExpertPlugin`). `schema` must have a
    `tags` list whose items carry `tag` (and optionally `rationale`, and `category`: a label of `vocabulary`).
    `role`: "policy" (plug-in experts) or "expert" (the persona experts: the trained expert adapter where one is served).
    """
    run = AgentCall(agent, ctx, endpoints, role=role)  # type: ignore[arg-type]
    output = await run.ask(agent, messages(shared_prefix, instructions), schema, temperature,
                           expert_max_tokens(ctx.tags_per_expert, vocabulary, rationale_chars_of(schema)), endpoints.seed_of(ctx, seed_offset))
    if output is None:  # one expert failing must not sink the run: its persona contributes no tags, flagged
        return run.update()
    tags = [
        ProposedTag(tag=clean_text(t.tag, 70), rationale=clip_sentence(getattr(t, "rationale", "") or "", RATIONALE_CHARS),
                    persona_index=persona_index, persona=persona,
                    category=vocabulary.path_of(getattr(t, "category", "")) if vocabulary is not None else None)
        for t in getattr(output, "tags", [])
        if clean_text(t.tag, 70)
    ]
    return run.update(tag_pool=tags)


def rationale_chars_of(schema: type[BaseModel]) -> int:
    """The rationale bound of an expert schema's tags (0: no rationale field), for its completion budget."""
    item = schema.model_fields["tags"].annotation.__args__[0]  # type: ignore[union-attr]
    return RATIONALE_CHARS if "rationale" in item.model_fields else 0


def explores(ctx: Context, persona_index: int) -> bool:
    """The last `explore_experts` of the K persona experts explore (only grounded runs can)."""
    return ctx.grounding != "off" and persona_index >= ctx.num_personas - ctx.explore_experts


def grounded_in_evidence(ctx: Context, persona_index: int, shares: dict[str, float]) -> bool:
    """The first `evidence_experts` of the K persona experts choose among the evidence's categories (grounded runs
    with evidence only)."""
    return ctx.grounding != "off" and bool(shares) and persona_index < ctx.evidence_experts


def for_evidence_expert(ctx: Context, persona_index: int, vocabulary: CategoryVocabulary,
                        shares: dict[str, float]) -> tuple[CategoryVocabulary, str]:
    """An evidence expert's enum and the line added to its instructions; the vocabulary unchanged and "" for any
    other expert. Shared by the persona experts and `recgpt eval --method expert`."""
    if not grounded_in_evidence(ctx, persona_index, shares):
        return vocabulary, ""
    return likeliest(vocabulary, shares, ctx.evidence_candidates), "\n" + EVIDENCE_EXPERT_INSTRUCTION


def likeliest(vocabulary: CategoryVocabulary, shares: dict[str, float], n: int) -> CategoryVocabulary:
    """`vocabulary` restricted to its `n` entries with the largest collaborative share (`shares`: catalogue path ->
    share), in vocabulary order; the whole vocabulary when no entry has a share."""
    ranked = sorted((-shares[path], position) for position, path in enumerate(vocabulary.paths) if shares.get(path, 0.0) > 0)
    keep = sorted(position for _, position in ranked[:n])
    return vocabulary.subset(keep) if keep else vocabulary


def unexplored(vocabulary: CategoryVocabulary, dataset: Dataset, history_item_ids: list[str]) -> CategoryVocabulary:
    """`vocabulary` without the categories of the history's items (a history item under a vocabulary path removes
    that path). The whole vocabulary when nothing would be left."""
    seen = {dataset.items[i].category for i in history_item_ids if i in dataset.items}
    keep = [n for n, path in enumerate(vocabulary.paths) if not any(c == path or c.startswith(path + " > ") for c in seen if c)]
    if not keep or len(keep) == len(vocabulary.paths):
        return vocabulary
    return vocabulary.subset(keep)


async def expert_node(task: ExpertTask, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    ctx = runtime.context
    persona, index = task["persona"], task["persona_index"]
    vocabulary = resources.vocabulary(ctx.grounding, ctx.grounding_labels)
    instructions = expert_instructions(persona.name, persona.focus, ctx.tags_per_expert, vocabulary is not None,
                                       rationale=ctx.expert_rationale_chars > 0)
    evidence_line = ""
    if vocabulary is not None:
        vocabulary, evidence_line = for_evidence_expert(ctx, index, vocabulary, task.get("category_shares") or {})
        instructions += evidence_line
    if vocabulary is not None and not evidence_line and explores(ctx, index):
        vocabulary = unexplored(vocabulary, resources.dataset, task.get("history_item_ids", []))
        instructions += "\n" + EXPLORE_INSTRUCTION
    schema = grounded_expert_schema(ctx.tags_per_expert, vocabulary, ctx.expert_rationale_chars)
    return await propose_tags(task["shared_prefix"], instructions, schema, f"expert[{index}]", index, persona.name, ctx,
                              ctx.expert_temperature, 1 + index, await resources.aendpoints(ctx), vocabulary, role="expert")
