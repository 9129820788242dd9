"""The shared prompt prefix every agent of a run reads, and the date it is written for.

A service, not a node: the graph's compress node, the judge evaluation and the training datasets all build
the exact prefix the agents saw through this one function.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recgpt.data import Dataset, Split, SplitExample
from recgpt.data.records import Interaction
from recgpt.errors import EndpointError, RecGPTError
from recgpt.prompts.shared import CATALOGUE_BLOCK, EVIDENCE_AFTER, EVIDENCE_HEADER, EVIDENCE_LIKELY, SYSTEM_PREFIX
from recgpt.prompts.v1 import RAW_SYSTEM_PREFIX
from recgpt.schema.context import Context
from recgpt.schema.state import ContextStats
from recgpt.services.resources import Endpoints, Resources
from recgpt.tools.context.compression import CompressionConfig, compress_history, raw_history
from recgpt.tools.context.entities import entity_titles
from recgpt.tools.context.environment import Environment, build_environment
from recgpt.tools.context.tokens import ServerTokenCounter
from recgpt.tools.retrieval.evidence import Evidence, collaborative_evidence
from recgpt.tools.retrieval.grounding import category_vocabulary


def recommendation_date(state: Mapping[str, Any], history: tuple[Interaction, ...]) -> dt.date:
    """The caller's date; else the day after the last history event when timestamps exist; else today.

    Never the target's date: that would leak when the held-out interaction happened.
    """
    if state.get("date"):
        try:
            return dt.date.fromisoformat(str(state["date"]))
        except ValueError:
            raise RecGPTError(f"date {state['date']!r} is not YYYY-MM-DD") from None
    stamps = [e.timestamp for e in history if e.timestamp is not None]
    if stamps:
        return dt.datetime.fromtimestamp(max(stamps), tz=dt.timezone.utc).date() + dt.timedelta(days=1)
    return dt.date.today()


def render_prefix(dataset: Dataset, history: tuple[Interaction, ...], profile: str, env: Environment,
                  max_items: int, entities: bool = False, catalogue: str = "", evidence: str = "",
                  category_label: Callable[[str], str | None] | None = None,
                  entity_categories: bool = True, anchors: int = 0, category_counts: bool = False) -> tuple[str, Any]:
    """The shared prefix: fixed instructions, the catalogue block (`catalogue_block`, or ""), then the user context
    (ending with the evidence block, `evidence_block`, or ""); `category_label` renames the history's category paths
    (short grounding labels)."""
    config = CompressionConfig(max_items=max_items, entities=entities, entity_categories=entity_categories,
                               entity_anchors=anchors, entity_category_counts=category_counts)
    compressed = compress_history(history, dataset.items, config, category_label)
    text = SYSTEM_PREFIX.format(profile=profile, environment=env.describe(), n_events=compressed.n_events,
                                history=compressed.text, catalogue=catalogue, evidence=evidence)
    return text, compressed


EVIDENCE_TITLE_CHARS = 60


def evidence_block(evidence: Evidence) -> str:
    """The evidence as the user context shows it (after the history); "" for no evidence."""
    if not evidence:
        return ""
    lines = [EVIDENCE_HEADER]
    if evidence.likely:
        lines.append(EVIDENCE_LIKELY)
        lines += [f"- {c.label}: {max(1, round(100 * c.share))}%" for c in evidence.likely]
    if evidence.after:
        lines.append(EVIDENCE_AFTER)
        for after in evidence.after:
            title = " ".join(after.title.split())
            title = title if len(title) <= EVIDENCE_TITLE_CHARS else title[: EVIDENCE_TITLE_CHARS - 3].rstrip() + "..."
            lines.append(f'- after "{title}": ' + ", ".join(f"{label} ({n})" for label, n in after.categories))
    return "\n".join(lines)


def user_evidence(ctx: Context, resources: Resources, split: str,
                  history: tuple[Interaction, ...]) -> tuple[Evidence, dict[str, float], list[str]]:
    """The collaborative evidence of one user (`Context.evidence_categories`), in the words of the run's grounding
    vocabulary (the leaf paths when grounding is off); every category's share keyed by its catalogue path (what the
    arbiter and the evidence experts read; shares under 0.1% left out); and its flags. Blocking (SASRec may be trained
    on first use): call it in a worker thread. A model that cannot be had leaves the next-category counts alone, flagged."""
    if ctx.evidence_categories <= 0 or not history:
        return Evidence(), {}, []
    dataset = resources.dataset
    split = Split(split).value
    vocabulary = resources.vocabulary(ctx.grounding, ctx.grounding_labels) or category_vocabulary(dataset, "leaf")
    flags: list[str] = []
    try:
        model = resources.next_item_model(split)
    except (RecGPTError, ValueError, RuntimeError) as exc:
        model = None
        flags.append(f"evidence_partial: no sequential model for split {split} ({exc}); next categories after the "
                     "latest items only")
    evidence = collaborative_evidence(dataset, split, model, [e.item_id for e in history], vocabulary,
                                      ctx.evidence_categories, ctx.evidence_after_items)
    shares = {vocabulary.path_of(c.label) or c.label: round(c.share, 4) for c in evidence.mass if c.share >= 0.001}
    return evidence, shares, flags


def catalogue_block(dataset: Dataset, ctx: Context) -> str:
    """The category list grounded runs show (same bytes for every user), or "" when grounding is off or the
    vocabulary is longer than `ctx.grounding_list_max` (then only the schema's enum carries it)."""
    if ctx.grounding == "off":
        return ""
    vocabulary = category_vocabulary(dataset, ctx.grounding, ctx.grounding_labels)
    if len(vocabulary) > ctx.grounding_list_max:
        return ""
    return CATALOGUE_BLOCK.format(categories=vocabulary.prompt_block())


async def _endpoints_or_none(ctx: Context, resources: Resources) -> Endpoints | None:
    """The run's endpoints, resolved here (off the event loop) so later nodes find them ready. In hybrid mode their
    errors (no adaptor, wrong model, no --prompt-embeds) surface here; in text mode an unreachable endpoint only
    leaves the token count unknown, and the first agent reports it (after its RetryPolicy)."""
    try:
        return await resources.aendpoints(ctx)
    except EndpointError:
        if ctx.compression == "hybrid":
            raise
        return None


@dataclass(frozen=True)
class _UserSituation:
    """What both context builders start from: the run's endpoints, the user's split example, situation and profile."""

    endpoints: Endpoints | None
    example: SplitExample
    environment: Environment
    profile: str


async def _user_situation(ctx: Context, resources: Resources, user_id: str, split: str, date: str | None,
                          weather: str | None, trend: str | None) -> _UserSituation:
    example = resources.dataset.example(str(user_id), split)
    when = recommendation_date({"date": date}, example.history)  # type: ignore[typeddict-item]
    return _UserSituation(endpoints=await _endpoints_or_none(ctx, resources), example=example,
                          environment=build_environment(when, country=ctx.country, weather=weather, trend=trend),
                          profile=example.user.profile.describe())


def _count_tokens(endpoints: Endpoints | None, text: str) -> tuple[int | None, str | None]:
    if endpoints is None:
        return None, None
    endpoint = endpoints.policy
    if endpoint.assembler is not None:  # hybrid: counted as the model reads it, each entity is one position
        return endpoint.assembler.count_tokens(text), "hybrid: served tokenizer + 1 per entity"
    try:
        counter = ServerTokenCounter(endpoint.base_url, endpoint.model, endpoint.api_key)
        return counter.count(text), counter.source
    except Exception:  # noqa: BLE001 - endpoints without /tokenize: count is simply unknown
        return None, None


async def build_shared_prefix(ctx: Context, resources: Resources, user_id: str, split: str = "full",
                              date: str | None = None, weather: str | None = None, trend: str | None = None) -> dict[str, Any]:
    """The one prompt prefix every agent of a run shares, within the token budget (plus its stats and flags).

    Also used outside the graph (e.g. by the judge evaluation) so that every consumer sees the
    exact context the agents saw. Resolves the run's endpoints (off the event loop), so a run's first node meets an
    unreachable server or a missing adaptor before any agent does.
    """
    dataset = resources.dataset
    user = await _user_situation(ctx, resources, user_id, split, date, weather, trend)
    endpoints, example, env, profile = user.endpoints, user.example, user.environment, user.profile
    flags: list[str] = (endpoints.flags_for(ctx) if endpoints else [])
    if not example.history:
        flags.append("empty_history: no behaviour; personas rest on profile and situation only")
    evidence, shares, evidence_flags = await asyncio.to_thread(user_evidence, ctx, resources, split, example.history)
    flags += evidence_flags
    block = evidence_block(evidence)
    short = resources.vocabulary(ctx.grounding, ctx.grounding_labels) if ctx.grounding_labels == "short" else None
    label = short.label_of if short is not None else None  # the history speaks the enum's short labels too
    max_items = ctx.max_history_items
    assembler = endpoints.policy.assembler if endpoints and ctx.compression == "hybrid" else None
    entity_categories = assembler.layout(ctx.hybrid_category_text) if assembler is not None else ctx.hybrid_category_text
    while True:
        prefix, compressed = render_prefix(dataset, example.history, profile, env, max_items, ctx.compression == "hybrid",
                                           evidence=block, category_label=label, entity_categories=entity_categories,
                                           anchors=ctx.hybrid_anchor_titles, category_counts=ctx.hybrid_category_counts)
        tokens, source = await asyncio.to_thread(_count_tokens, endpoints, prefix)
        if tokens is None or tokens <= ctx.max_context_tokens or max_items <= 1:
            break
        max_items = max(1, max_items // 2)
    catalogue = catalogue_block(dataset, ctx)
    if catalogue:  # the budget bounds the user's part; the shop-wide list is the same cached prefix for every user
        prefix, compressed = render_prefix(dataset, example.history, profile, env, max_items, ctx.compression == "hybrid",
                                           catalogue, block, label, entity_categories, ctx.hybrid_anchor_titles,
                                           ctx.hybrid_category_counts)
    if tokens is not None and tokens > ctx.max_context_tokens:
        flags.append(f"context_over_budget: {tokens} tokens > {ctx.max_context_tokens} even with 1 listed item")
    if compressed.truncated:
        flags.append(f"history_truncated: {compressed.n_summarised_events} older interactions summarised as category counts")
    stats = ContextStats(
        n_events=compressed.n_events, n_distinct_items=compressed.n_distinct_items,
        n_listed_items=compressed.n_listed_items, n_summarised_events=compressed.n_summarised_events,
        prefix_tokens=tokens, token_source=source, environment=env.describe(),
        compression=ctx.compression, n_entities=len(entity_titles(prefix)),
    )
    return {"shared_prefix": prefix, "context_stats": stats, "history_item_ids": [e.item_id for e in example.history],
            "category_shares": shares, "flags": flags}


RAW_CHARS_PER_TOKEN = 3
RAW_ESTIMATE = "estimate: 3 characters per token (no tokenizer reachable)"
"""English text runs ~4 characters per token on Qwen's tokenizer; 3 errs on the short side, so the bound holds."""


async def build_raw_prefix(ctx: Context, resources: Resources, user_id: str, split: str = "full",
                           date: str | None = None, weather: str | None = None, trend: str | None = None) -> dict[str, Any]:
    """RecGPT-V1's raw context (`Context.v1_history = 'raw'`): V2's frame around every interaction of the history,
    uncompressed, within `ctx.raw_history_tokens`; the oldest interactions are dropped first (binary search on how
    many of the newest fit, counted by the served tokenizer), with a flag saying how many."""
    dataset = resources.dataset
    user = await _user_situation(ctx, resources, user_id, split, date, weather, trend)
    endpoints, example, env, profile = user.endpoints, user.example, user.environment, user.profile

    def render(keep: int) -> tuple[str, Any]:
        history = raw_history(example.history, dataset.items, keep)
        return RAW_SYSTEM_PREFIX.format(profile=profile, environment=env.describe(), n_events=history.n_events, evidence="",
                                        history=history.text, catalogue=""), history

    def count(text: str) -> tuple[int, str]:  # the bound must hold even where the server cannot count
        tokens, source = _count_tokens(endpoints, text)
        return (tokens, source or "") if tokens is not None else (-(-len(text) // RAW_CHARS_PER_TOKEN), RAW_ESTIMATE)

    n = len(example.history)
    prefix, history = render(n)
    tokens, source = await asyncio.to_thread(count, prefix)
    if tokens > ctx.raw_history_tokens and n > 1:
        low, high = 1, n - 1  # the most newest interactions that fit
        while low < high:
            middle = (low + high + 1) // 2
            if (await asyncio.to_thread(count, render(middle)[0]))[0] <= ctx.raw_history_tokens:
                low = middle
            else:
                high = middle - 1
        prefix, history = render(low)
        tokens, source = await asyncio.to_thread(count, prefix)
    flags = (endpoints.flags_for(ctx) if endpoints else []) + ([] if example.history else ["empty_history: no behaviour; personas rest on profile and situation only"])
    if history.truncated:
        flags.append(f"history_truncated: the {history.n_summarised_events} oldest interactions dropped to fit the raw "
                     f"context in {ctx.raw_history_tokens} tokens")
    if tokens > ctx.raw_history_tokens:
        flags.append(f"context_over_budget: {tokens} tokens > {ctx.raw_history_tokens} even with 1 listed interaction")
    stats = ContextStats(
        n_events=history.n_events, n_distinct_items=history.n_distinct_items, n_listed_items=history.n_listed_items,
        n_summarised_events=history.n_summarised_events, prefix_tokens=tokens, token_source=source,
        environment=env.describe(), compression="raw", n_entities=0,
    )
    return {"shared_prefix": prefix, "context_stats": stats, "history_item_ids": [e.item_id for e in example.history],
            "flags": flags}
