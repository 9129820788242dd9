"""`recgpt eval --method expert`: the trained policy alone, one Distributed Expert call per user.

`recgpt train` optimises the expert's answer to the training persona's prompt; this method asks
exactly that prompt for the held-out split (the history before the target, never the target), so
base, SFT and GRPO policies are compared on the behaviour they were trained for, at one LLM call
per user instead of the full graph's ~4.5. Tags are scored like recgpt's: each tag's nearest
catalogue category for cat HR@K, interleaved per-tag retrieval for item HR@K.
"""

from __future__ import annotations

import asyncio
from typing import Any

from recgpt.agents.common import clean_text, messages
from recgpt.agents.expert import expert_max_tokens, for_evidence_expert, grounded_expert_schema, training_expert_instructions
from recgpt.data import Dataset
from recgpt.errors import InvalidModelOutput
from recgpt.eval.metrics import interleave
from recgpt.eval.runs import EvalConfig, ResultStore, UserResult, has_timestamps, run_llm_method
from recgpt.services.prefix import build_shared_prefix
from recgpt.services.resources import endpoints_of, resolve
from recgpt.tools.llm import LLMRequestRejected, acall_structured, call_of, chat_model
from recgpt.tools.retrieval.grounding import category_vocabulary
from recgpt.tools.retrieval.protocol import UserSignals, search


async def run_expert(config: EvalConfig, dataset: Dataset, users: list[str], store: ResultStore,
                     show_progress: bool = True) -> None:

    resources = resolve(dataset)
    index = resources.retriever
    k_max = max(config.k_items)
    m = config.k_tags
    has_time = has_timestamps(dataset)

    async def answer(ctx: Any, user_id: str, history: list[str], result: UserResult) -> None:
        vocabulary = category_vocabulary(dataset, ctx.grounding, ctx.grounding_labels) if ctx.grounding != "off" else None
        shared = await build_shared_prefix(ctx, resources, user_id, config.split, None if has_time else config.date)
        rationale_chars = ctx.expert_rationale_chars  # as the graph serves the expert (0: no rationale)
        instructions = training_expert_instructions(m, vocabulary is not None, rationale_chars > 0)
        if vocabulary is not None:  # the policy as an evidence expert, where `evidence_experts` asks for one
            vocabulary, evidence_line = for_evidence_expert(ctx, 0, vocabulary, shared["category_shares"])
            instructions += evidence_line
        endpoint = endpoints_of(ctx).expert  # the trained expert adapter where it is served beside the base
        model = chat_model(endpoint, ctx.expert_temperature, expert_max_tokens(m, vocabulary, rationale_chars), ctx.seed)
        result.flags = list(shared["flags"])
        try:
            output, call = await acall_structured(model, messages(shared["shared_prefix"], instructions),
                                                  grounded_expert_schema(m, vocabulary, rationale_chars), "expert", endpoint.base_url, ctx.schema_attempts)
        except (InvalidModelOutput, LLMRequestRejected) as exc:
            call = call_of(exc, "expert")
            result.flags.append(f"expert_failed: {exc}")  # scored as a user with no tags, never dropped
            output = None
        proposed = [x for x in (output.tags if output else []) if clean_text(x.tag, 70)]
        tags = [clean_text(x.tag, 70) for x in proposed]
        grounded = [vocabulary.path_of(x.category) if vocabulary is not None else None for x in proposed]
        result.tags = tags
        if tags:
            user = UserSignals(user_id=user_id, history_item_ids=tuple(history), split=config.split)
            hits = await asyncio.to_thread(search, index, tags, k_max, set(history), user, grounded)
            cats = await asyncio.to_thread(index.nearest_categories, tags, 1) if None in grounded else [[]] * len(tags)
            result.ranked_items = interleave([[h.item_id for h in lst] for lst in hits], k_max)
            result.ranked_categories = [g or (c[0].category if c else "") for g, c in zip(grounded, cats)]
        result.llm_calls = 1
        result.first_try_valid_calls = int(output is not None and call.attempts == 1)
        result.prompt_tokens = call.prompt_tokens
        result.completion_tokens = call.completion_tokens

    await run_llm_method(config, dataset, users, store, answer, show_progress)
