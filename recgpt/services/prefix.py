"""The shared prompt prefix every agent of a run reads, and the date it is written for.

A service, not a node: the graph's compress node, the judge evaluation and the training datasets all build
the exact prefix the agents saw through this one function.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from recgpt.data import Dataset, load_dataset
from recgpt.data.records import Interaction
from recgpt.errors import RecGPTError
from recgpt.prompts.shared import CATALOGUE_BLOCK, SYSTEM_PREFIX
from recgpt.schema.context import Context
from recgpt.schema.state import ContextStats
from recgpt.services.endpoints import endpoint_of
from recgpt.tools.compression import CompressionConfig, compress_history
from recgpt.tools.entities import entity_titles
from recgpt.tools.environment import Environment, build_environment
from recgpt.tools.grounding import category_vocabulary
from recgpt.tools.tokens import ServerTokenCounter


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
                  max_items: int, entities: bool = False, catalogue: str = "") -> tuple[str, Any]:
    """The shared prefix: fixed instructions, the catalogue block (`catalogue_block`, or ""), then the user context."""
    compressed = compress_history(history, dataset.items, CompressionConfig(max_items=max_items, entities=entities))
    text = SYSTEM_PREFIX.format(profile=profile, environment=env.describe(), n_events=compressed.n_events,
                                history=compressed.text, catalogue=catalogue)
    return text, compressed


def catalogue_block(dataset: Dataset, ctx: Context) -> str:
    """The category list grounded runs show (same bytes for every user), or "" when grounding is off or the
    vocabulary is longer than `ctx.grounding_list_max` (then only the schema's enum carries it)."""
    if ctx.grounding == "off":
        return ""
    vocabulary = category_vocabulary(dataset, ctx.grounding)
    if len(vocabulary) > ctx.grounding_list_max:
        return ""
    return CATALOGUE_BLOCK.format(categories=vocabulary.prompt_block())


def _count_tokens(ctx: Context, text: str) -> tuple[int | None, str | None]:
    if ctx.compression == "hybrid":  # counted as the model reads it: each entity is one position
        endpoint = endpoint_of(ctx)  # loads the adaptor; its errors (no adaptor, wrong model, flag missing) surface here
        assert endpoint.assembler is not None
        return endpoint.assembler.count_tokens(text), "hybrid: served tokenizer + 1 per entity"
    try:
        endpoint = endpoint_of(ctx)
        counter = ServerTokenCounter(endpoint.base_url, endpoint.model, endpoint.api_key)
        return counter.count(text), counter.source
    except Exception:  # noqa: BLE001 - endpoints without /tokenize: count is simply unknown
        return None, None


async def build_shared_prefix(ctx: Context, user_id: str, dataset_name: str = "office", split: str = "full",
                              date: str | None = None, weather: str | None = None, trend: str | None = None) -> dict[str, Any]:
    """The one prompt prefix every agent of a run shares, within the token budget (plus its stats and flags).

    Also used outside the graph (e.g. by the judge evaluation) so that every consumer sees the
    exact context the agents saw.
    """
    dataset = load_dataset(dataset_name)
    example = dataset.example(str(user_id), split)
    when = recommendation_date({"date": date}, example.history)  # type: ignore[typeddict-item]
    env = build_environment(when, country=ctx.country, weather=weather, trend=trend)
    profile = example.user.profile.describe()
    flags: list[str] = []
    if not example.history:
        flags.append("empty_history: no behaviour; personas rest on profile and situation only")
    max_items = ctx.max_history_items
    while True:
        prefix, compressed = render_prefix(dataset, example.history, profile, env, max_items, ctx.compression == "hybrid")
        tokens, source = await asyncio.to_thread(_count_tokens, ctx, prefix)
        if tokens is None or tokens <= ctx.max_context_tokens or max_items <= 1:
            break
        max_items = max(1, max_items // 2)
    catalogue = catalogue_block(dataset, ctx)
    if catalogue:  # the budget bounds the user's part; the shop-wide list is the same cached prefix for every user
        prefix, compressed = render_prefix(dataset, example.history, profile, env, max_items, ctx.compression == "hybrid",
                                           catalogue)
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
            "flags": flags}


RAW_CHARS_PER_TOKEN = 3
RAW_ESTIMATE = "estimate: 3 characters per token (no tokenizer reachable)"
"""English text runs ~4 characters per token on Qwen's tokenizer; 3 errs on the short side, so the bound holds."""


async def build_raw_prefix(ctx: Context, user_id: str, dataset_name: str = "office", split: str = "full",
                           date: str | None = None, weather: str | None = None, trend: str | None = None) -> dict[str, Any]:
    """RecGPT-V1's raw context (`Context.v1_history = 'raw'`): V2's frame around every interaction of the history,
    uncompressed, within `ctx.raw_history_tokens`; the oldest interactions are dropped first (binary search on how
    many of the newest fit, counted by the served tokenizer), with a flag saying how many."""
    from recgpt.prompts.v1 import RAW_SYSTEM_PREFIX
    from recgpt.tools.compression import raw_history

    dataset = load_dataset(dataset_name)
    example = dataset.example(str(user_id), split)
    when = recommendation_date({"date": date}, example.history)  # type: ignore[typeddict-item]
    env = build_environment(when, country=ctx.country, weather=weather, trend=trend)
    profile = example.user.profile.describe()

    def render(keep: int) -> tuple[str, Any]:
        history = raw_history(example.history, dataset.items, keep)
        return RAW_SYSTEM_PREFIX.format(profile=profile, environment=env.describe(), n_events=history.n_events,
                                        history=history.text, catalogue=""), history

    def count(text: str) -> tuple[int, str]:  # the bound must hold even where the server cannot count
        tokens, source = _count_tokens(ctx, text)
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
    flags = [] if example.history else ["empty_history: no behaviour; personas rest on profile and situation only"]
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
