"""`recgpt eval`: run one method over sampled users of a split, persist per user, report.

Results go to `$RECGPT_HOME/eval/<method>-<config hash>.jsonl`, one line per finished user, so
a killed run resumes without redoing finished users (users that failed are retried). The hash
covers everything that changes an answer: method, dataset content, split, users, seed, K, the
runtime Context, the served model and the prompt templates.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recgpt.agents.arbiter import arbiter_schema, dedupe_pool
from recgpt.agents.expert import expert_schema
from recgpt.agents.planner import planner_schema
from recgpt.data import Dataset, Split
from recgpt.errors import EndpointError, RecGPTError
from recgpt.eval import baselines
from recgpt.eval.blend import QUOTA_GRID, blend, describe, fuse, sweep
from recgpt.eval.metrics import hit_at_k, interleave
from recgpt.eval.policy import run_expert
from recgpt.eval.runs import (
    CEILINGS,
    LLM_METHODS,
    EvalConfig,
    ResultStore,
    UserResult,
    base_result,
    categories_of,
    has_timestamps,
    iter_progress,
    levels_of,
    recgpt_context,
    run_llm_method,
)
from recgpt.graph import build_graph
from recgpt.prompts import arbiter, expert, explore, planner, shared
from recgpt.prompts import evidence as evidence_prompt
from recgpt.render import usage_totals
from recgpt.services.endpoints import check_endpoint, served_model_identity
from recgpt.services.prefix import evidence_block
from recgpt.services.resources import default_registry, endpoints_of, resolve
from recgpt.settings import get_settings
from recgpt.tools.llm import ENDPOINT_DOWN
from recgpt.tools.retrieval import evidence
from recgpt.tools.retrieval.evidence import category_mass
from recgpt.tools.retrieval.grounding import category_vocabulary
from recgpt.tools.retrieval.protocol import Retriever, UserSignals, search


def sample_users(dataset: Dataset, split: str, n: int, seed: int) -> list[str]:
    pool = sorted(dataset.split_users(split), key=lambda u: (len(u), u))
    return random.Random(seed).sample(pool, min(n, len(pool)))


TAG_IRRELEVANT_CONTEXT = ("explanation_mode", "explain_items_per_tag", "style_temperature", "explanation_temperature",
                          "explanation_fallback",
                          "judge_mode", "judge_base_url", "judge_model", "judge_temperature", "judge_tau_tags",
                          "judge_tau_explanations", "judge_injection_guard", "judge_code_checks",
                          "judge_scoring", "judge_yes_threshold", "judge_no_threshold")
"""Context fields of the explanation/judge stages: they cannot change tags or items, so they stay out of
the result-store hash (results computed before those stages existed remain valid)."""


def prompts_fingerprint() -> str:
    """Prompt texts and the output schemas the server enforces: both change answers."""

    text = "".join(inspect.getsource(m) for m in (shared, planner, expert, arbiter))
    text += json.dumps([s.model_json_schema() for s in (planner_schema(3), expert_schema(5), arbiter_schema(5, 10))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_hash(config: EvalConfig, dataset: Dataset, model: str | None) -> str:
    """Key of a per-user results store. The user count is not in it: a user's answer does not depend on how many
    others were sampled, so a 100-user run reads the users it shares with an earlier 200-user run (with seed-sampled
    users, the smaller sample is the larger one's prefix whenever `random.sample` takes the same path for both)."""
    # `quota` (blend only) joined the config later: left out when unset, so that earlier results keep their keys
    # `merge` re-ranks stored answers without asking the LLM (`rescore`): never part of the answers' key
    dump = config.model_dump(exclude={"concurrency", "users", "merge"} | ({"quota"} if config.quota is None else set()))
    payload: dict[str, Any] = {"config": dump, "data": dataset.content_hash()}
    if config.method in LLM_METHODS:
        ctx = asdict(recgpt_context(config))
        for volatile in ("base_url", "api_key", "request_timeout_s", "max_retries", *TAG_IRRELEVANT_CONTEXT):
            ctx.pop(volatile, None)
        for added_later, default in (("compression", "text"), ("adaptor_dir", ""), ("explore_experts", 0),
                                         ("v1_history", "compressed"), ("raw_history_tokens", 6000),
                                         ("grounding_labels", "path"), ("evidence_categories", 0),
                                         ("evidence_after_items", 2), ("evidence_experts", 0), ("evidence_candidates", 20),
                                         ("tidy_tags", True), ("arbiter_distinct_categories", False),
                                         ("arbiter_fill_from_evidence", False),
                                         ("hybrid_category_text", True), ("hybrid_anchor_titles", 0),
                                         ("hybrid_category_counts", False)):
            if ctx.get(added_later) == default:  # fields added after results were stored: at their default, hashes stay
                ctx.pop(added_later)
        payload.update(context=ctx, model=model, prompts=prompts_fingerprint())
        if config.method == "expert" and not ctx.get("expert_rationale_chars"):
            # the policy alone follows the served expert's rationale setting since issue 34 (none by default); the
            # stores written before asked for a rationale, so their answers are not these
            payload["policy_rationale"] = "served"
        if ctx.get("explore_experts"):  # the explorers' instruction, only where it is used (earlier keys stay)
            payload["explore_prompt"] = hashlib.sha256(inspect.getsource(explore).encode()).hexdigest()[:12]
        if ctx.get("evidence_experts"):  # the evidence experts' instruction, only where it is used
            payload["evidence_expert_prompt"] = hashlib.sha256(inspect.getsource(evidence_prompt).encode()).hexdigest()[:12]
        if ctx.get("evidence_categories"):  # how the evidence is computed and written changes answers too
            payload["evidence"] = hashlib.sha256((inspect.getsource(evidence_block) + inspect.getsource(evidence)).encode()).hexdigest()[:12]
        if ctx.get("grounding", "off") != "off":  # the enum and the listed categories change answers too
            vocabulary = category_vocabulary(dataset, ctx["grounding"], ctx.get("grounding_labels", "path"))
            payload["vocabulary"] = hashlib.sha256(json.dumps([vocabulary.labels, vocabulary.paths]).encode()).hexdigest()[:12]
    if config.method == "sasrec":
        payload["sasrec"] = baselines.SASRec().hparams
    if config.method in ("category", *CEILINGS):
        payload["category_tags"] = "grounded"  # since grounding: each category tag searches inside its category
    if config.method in (*RETRIEVING, *LLM_METHODS):
        payload["retrieval"] = RETRIEVAL_VERSION

    settings = get_settings()
    retriever = settings.retriever.strip()
    # The setting was added later: under `chroma` (the default then) results keep the keys they were stored under.
    if retriever != "chroma" and config.method in (*RETRIEVING, *LLM_METHODS):
        payload["retriever"] = retriever  # another backend ranks other items
        if retriever == "collaborative":  # and its mix weights rank them differently again
            payload["retriever"] += f":beta={settings.retrieval_beta}:depth={settings.retrieval_depth}"
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


RETRIEVING: tuple[str, ...] = ("category", "sasrec_categories", *CEILINGS)
"""Classical rows whose items come from grounded category tags through the configured retriever."""
RETRIEVAL_VERSION = "in-category-2"
"""What grounded retrieval returns, in result keys: 'in-category-2' = a grounded tag's items from its category, then its
parent's (`recgpt.tools.retrieval.collaborative`). Results stored under another behaviour are not reused."""


def sasrec_categories(dataset: Dataset, split: str, history: list[str], k: int) -> list[str]:
    """The `sasrec_categories` row's tags: the `k` leaf categories carrying the most of SASRec's next-item probability
    after `history` (the registry's SASRec of the split: the one the evidence block and the retriever use)."""
    model = default_registry().sasrec(dataset, split)
    vocabulary = category_vocabulary(dataset, "leaf")
    return [share.label for share in category_mass(model, history, dataset, vocabulary)[:k]]


def run_classical(config: EvalConfig, dataset: Dataset, users: list[str], store: ResultStore,
                  show_progress: bool = True) -> None:

    levels = levels_of(dataset)
    done = store.load()
    todo = [u for u in users if u not in done or done[u].error]
    if not todo:
        return
    k_max = max(config.k_items)
    train = baselines.training_sequences(dataset, config.split)
    index = default_registry().retriever(dataset) if config.method in RETRIEVING else None
    model: Any = None
    if config.method == "popularity":
        model = baselines.Popularity().fit(train)
    elif config.method == "itemknn":
        model = baselines.ItemKNN().fit(train)
    elif config.method == "sasrec":
        model = baselines.SASRec(seed=config.seed, show_progress=show_progress).fit(train)
    for user_id in iter_progress(todo, f"{config.method} on {len(todo)} users", show_progress):
        started = time.perf_counter()
        result, history = base_result(dataset, user_id, config.split, levels)
        if config.method in RETRIEVING:
            if config.method == "category":
                categories = baselines.history_categories(dataset, history)[: config.k_tags]
            elif config.method == "sasrec_categories":
                categories = sasrec_categories(dataset, config.split, history, config.k_tags)
            else:  # a ceiling: the target's own category, at the method's level (the only use of the target)
                path = dataset.items[result.target_item].category_path
                categories = [" > ".join(path[: None if config.method == "oracle_leaf" else 2])] if path else []
            user = UserSignals(user_id=user_id, history_item_ids=tuple(history), split=config.split)
            # category paths as tags, each grounded in itself: the same retrieval a grounded recgpt tag gets
            hits = search(index, categories, k_max, set(history), user, categories) if categories else []
            result.ranked_items = interleave([[h.item_id for h in lst] for lst in hits], k_max)
            result.ranked_categories = categories
            result.tags = categories
        else:
            result.ranked_items = model.recommend(history, k_max)
            result.ranked_categories = categories_of(dataset, result.ranked_items, config.k_tags)
        result.wall_s = time.perf_counter() - started
        store.append(result)


def inside(category: str, path: str | None) -> bool:
    """Whether an item's category path is `path` or below it."""
    return bool(path) and (category == path or category.startswith(f"{path} > "))


def shown_stats(recommendations: list[Any], result: UserResult) -> None:
    """What the shopper saw: items shown, inside their tag's category, inside it or its parent, repeated across tags."""
    seen: set[str] = set()
    for recommendation in recommendations:
        path = recommendation.tag.category or recommendation.category
        parent = path.rpartition(" > ")[0] if path and " > " in path else path
        for item in recommendation.items:
            result.shown_items += 1
            result.shown_in_category += inside(item.category, path)
            result.shown_in_family += inside(item.category, parent)
            result.shown_repeats += item.item_id in seen
            seen.add(item.item_id)


async def answer_with_graph(graph: Any, index: Retriever, config: EvalConfig, dataset: Dataset, ctx: Any, user_id: str,
                            history: list[str], result: UserResult) -> dict[str, Any]:
    """Run a recommendation graph (V2, or the V1 baseline) for one user and fill `result`; returns the state."""

    payload = {"user_id": user_id, "dataset": config.dataset, "split": config.split,
               "date": None if has_timestamps(dataset) else config.date}
    state = await graph.ainvoke(payload, context=ctx)
    final = state.get("tags", [])
    tags = [t.tag for t in final]
    user = UserSignals(user_id=user_id, history_item_ids=tuple(history), split=config.split)
    hits = await asyncio.to_thread(search, index, tags, max(config.k_items), set(history), user,
                                   [t.category for t in final]) if tags else []
    result.tags = tags
    result.ranked_items = interleave([[h.item_id for h in lst] for lst in hits], max(config.k_items))
    result.ranked_categories = [r.category or "" for r in state.get("recommendations", [])]
    result.flags = list(state.get("flags", []))
    shown_stats(state.get("recommendations", []), result)
    ranks = {(t.tag, t.category, t.persona_index): t.rank for t in final}
    result.pool = [{"tag": t.tag, "category": t.category, "persona_index": t.persona_index,
                    "rank": ranks.get((t.tag, t.category, t.persona_index))} for t in dedupe_pool(state.get("tag_pool", []))]
    lost = [f for f in result.flags if f": {ENDPOINT_DOWN}: " in f]
    if lost:  # a degraded answer because the server failed is not the method's answer: redo this user on resume
        raise EndpointError(f"{len(lost)} agent call(s) lost to the endpoint, e.g. {lost[0][:200]}")
    totals = usage_totals(state)
    result.llm_calls = int(totals["llm_calls"])
    result.first_try_valid_calls = sum(1 for call in state.get("calls", []) if call.ok and call.attempts == 1)
    result.prompt_tokens = int(totals["prompt_tokens"])
    result.completion_tokens = int(totals["completion_tokens"])
    return state


async def run_recgpt(config: EvalConfig, dataset: Dataset, users: list[str], store: ResultStore,
                     show_progress: bool = True) -> None:

    resources = resolve(dataset)  # one retriever for the graph's retrieval and the item ranking below
    graph = build_graph(resources)
    index = resources.retriever

    async def answer(ctx: Any, user_id: str, history: list[str], result: UserResult) -> None:
        await answer_with_graph(graph, index, config, dataset, ctx, user_id, history, result)

    await run_llm_method(config, dataset, users, store, answer, show_progress)


def score_merged(dataset: Dataset, split: str, history: list[str], categories: list[str], k: int) -> list[str]:
    """The LLM channel's flat list by score: SASRec's ranking of the catalogue (the split's model, the history's items
    left out) restricted to the items inside the final tags' categories. Round-robin interleaving gives each tag's
    first item a slot in the top 10 whatever its score; here the tags choose where to look and SASRec how to rank."""
    model = default_registry().sasrec(dataset, split)
    ids = list(dataset.items)
    scores = model.score(history, ids)
    wanted = [c for c in dict.fromkeys(categories) if c]
    seen = set(history)
    order = sorted((n for n, i in enumerate(ids) if i not in seen and any(inside(dataset.items[i].category, c) for c in wanted)),
                   key=lambda n: -scores[n])
    return [ids[n] for n in order[:k]]


def rescore(store: ResultStore, dataset: Dataset, config: EvalConfig) -> ResultStore:
    """The same LLM answers with the channel's flat list merged by score (`EvalConfig.merge`): no LLM call, a derived
    store beside the answers' (rewritten whole: it is a function of them)."""
    derived = ResultStore(store.path.with_name(store.path.stem + "-score.jsonl"))
    lines = []
    for result in store.load().values():
        if result.error is None:
            history = [e.item_id for e in dataset.example(result.user_id, config.split).history]
            items = score_merged(dataset, config.split, history, result.ranked_categories, max(config.k_items))
            result = result.model_copy(update={"ranked_items": items})
        lines.append(result.model_dump_json() + "\n")
    derived.path.write_text("".join(lines))
    return derived


COMBINERS = {"blend": blend, "fusion": fuse}
"""The two ways SASRec's list and recgpt's are combined: the quota blend and weighted reciprocal-rank fusion
(`recgpt.eval.blend`); `EvalConfig.quota` is the LLM channel's share in both."""


def run_blend(config: EvalConfig, home: Path, show_progress: bool = True) -> tuple[list[UserResult], Path, dict[str, Any]]:
    """SASRec and recgpt (each run or resumed for the same users, split and K) combined by `config.method` (`blend` or
    `fusion`) at the config's LLM share, or at the share that maximises item HR@10 here (`quota=None`: validation
    only). Returns the per-user results, their store and the share's description."""
    combine = COMBINERS[config.method]
    if config.quota is None and config.split != "validation":
        raise RecGPTError(f"the {config.method}'s LLM share is tuned on the validation split only: pass one for test")
    dataset = default_registry().dataset(config.dataset)
    _, classical, _ = run_eval(config.model_copy(update={"method": "sasrec", "quota": None, "context": {}}), home, show_progress)
    _, llm, _ = run_eval(config.model_copy(update={"method": "recgpt", "quota": None}), home, show_progress)
    by_user = {r.user_id: r for r in llm if r.error is None}
    pairs = [(c, by_user[c.user_id]) for c in classical if c.error is None and c.user_id in by_user]
    if len(pairs) < len(classical):
        raise RecGPTError(f"the blend needs both channels for every user: {len(classical) - len(pairs)} of "
                          f"{len(classical)} users have no recgpt result (rerun `recgpt eval --method recgpt`)")
    k_max = max(config.k_items)
    grid = None
    quota = config.quota
    if quota is None:
        hits = {q: [hit_at_k(combine(c.ranked_items, r.ranked_items, q, k_max), c.target_item, 10) for c, r in pairs]
                for q in QUOTA_GRID}
        quota, grid = sweep(hits)
    results = []
    for c, r in pairs:
        items = combine(c.ranked_items, r.ranked_items, quota, k_max)
        results.append(c.model_copy(update={"ranked_items": items, "ranked_categories": categories_of(dataset, items, config.k_tags),
                                            "tags": r.tags, "flags": r.flags, "llm_calls": r.llm_calls}))
    store = ResultStore(home / "eval" / f"{config.method}-{config_hash(config.model_copy(update={'quota': quota}), dataset, None)}.jsonl")
    store.path.write_text("".join(result.model_dump_json() + "\n" for result in results))  # derived: rewritten whole
    return results, store.path, describe(quota, "fixed" if config.quota is not None else "tuned on this split", grid)


def run_eval(config: EvalConfig, home: Path, show_progress: bool = True) -> tuple[EvalConfig, list[UserResult], Path]:
    """Run (or resume) one method; return the per-user results in sampled-user order."""
    if config.method in COMBINERS:
        results, path, _ = run_blend(config, home, show_progress)
        return config, results, path
    dataset = default_registry().dataset(config.dataset)
    Split(config.split)
    users = sample_users(dataset, config.split, config.users, config.seed)
    model = None
    if config.method in LLM_METHODS:
        ctx = recgpt_context(config)
        endpoint = endpoints_of(ctx).policy
        model = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
        if endpoint.assembler is not None:  # hybrid: results depend on the adaptor's weights, key them by its content
            model += f"+adaptor:{endpoint.assembler.adaptor_fingerprint}"
    store = ResultStore(home / "eval" / f"{config.method}-{config_hash(config, dataset, model)}.jsonl")
    done = store.load()
    if config.method in (*RETRIEVING, *LLM_METHODS) and any(u not in done or done[u].error for u in users):
        # they retrieve: build the index / collaborative model now, visibly, rather than inside the first user's
        # retrieval; an LLM method checks its endpoint first, so a server that is down fails in seconds, not minutes
        if config.method in LLM_METHODS:
            check_endpoint(recgpt_context(config))
        default_registry().prepare(dataset, config.split, show_progress)
    if config.method == "recgpt":
        asyncio.run(run_recgpt(config, dataset, users, store, show_progress))
    elif config.method == "expert":

        asyncio.run(run_expert(config, dataset, users, store, show_progress))
    else:
        run_classical(config, dataset, users, store, show_progress)
    if config.method in LLM_METHODS and config.merge == "score":
        store = rescore(store, dataset, config)
    results = store.load()
    return config, [results[u] for u in users if u in results], store.path
