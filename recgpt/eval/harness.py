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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recgpt.data import Dataset, Split, load_dataset
from recgpt.errors import RecGPTError
from recgpt.eval import baselines
from recgpt.eval.metrics import category_key, interleave
from recgpt.tools.jsonl import append_line

Method = Literal["popularity", "category", "itemknn", "sasrec", "recgpt", "expert"]
METHODS: tuple[str, ...] = ("popularity", "category", "itemknn", "sasrec", "recgpt", "expert")
LLM_METHODS: tuple[str, ...] = ("recgpt", "expert")
"""`expert` is one Distributed Expert call with the training persona: the policy `recgpt train` optimises, alone."""
CLASSICAL: tuple[str, ...] = ("popularity", "category", "itemknn", "sasrec")


def levels_of(dataset: Dataset) -> tuple[str, ...]:
    """Category levels scored: genre for flat-labelled catalogues, else L2 and leaf."""
    return ("genre",) if any(item.genres for item in dataset.items.values()) else ("l2", "leaf")


class EvalConfig(BaseModel):
    """Everything that defines one evaluation run (hashed into the results file name)."""

    dataset: str = "office"
    split: Literal["validation", "test"] = "test"
    users: int = Field(default=200, ge=1)
    seed: int = 0
    method: Method = "recgpt"
    k_tags: int = Field(default=10, ge=1, description="K for tag/category HR@K (and the number of final tags).")
    k_items: list[int] = Field(default_factory=lambda: [10, 30], description="K values for item HR/NDCG.")
    concurrency: int = Field(default=8, ge=1)
    date: str = Field(default="2026-11-25", description="Situation date for datasets without timestamps (fixed: reproducible).")
    context: dict[str, Any] = Field(default_factory=dict, description="recgpt runtime Context overrides.")

    def comparison_key(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "users": self.users, "seed": self.seed,
                "k_tags": self.k_tags, "k_items": self.k_items}


class UserResult(BaseModel):
    user_id: str
    target_item: str
    target_labels: dict[str, list[str]]
    new_interest: dict[str, bool]
    ranked_items: list[str] = Field(default_factory=list)
    ranked_categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    llm_calls: int = 0
    first_try_valid_calls: int = 0
    """LLM calls whose first answer was schema-valid (no re-sample, no failure)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    error: str | None = None


def sample_users(dataset: Dataset, split: str, n: int, seed: int) -> list[str]:
    pool = sorted(dataset.split_users(split), key=lambda u: (len(u), u))
    return random.Random(seed).sample(pool, min(n, len(pool)))


def recgpt_context(config: EvalConfig):  # -> Context
    from recgpt.schema.context import Context

    # Tag/item metrics do not depend on explanations or the judge: both off (see `recgpt eval-explain`).
    overrides = {"num_tags": config.k_tags, "tags_per_expert": 5, "explanation_mode": "off", "judge_mode": "off", **config.context}
    return Context(**overrides)


TAG_IRRELEVANT_CONTEXT = ("explanation_mode", "explain_items_per_tag", "style_temperature", "explanation_temperature",
                          "judge_mode", "judge_base_url", "judge_model", "judge_temperature", "judge_tau_tags",
                          "judge_tau_explanations", "judge_injection_guard")
"""Context fields of the explanation/judge stages: they cannot change tags or items, so they stay out of
the result-store hash (results computed before those stages existed remain valid)."""


def prompts_fingerprint() -> str:
    """Prompt texts and the output schemas the server enforces: both change answers."""
    from recgpt.agents.arbiter import arbiter_schema
    from recgpt.agents.expert import expert_schema
    from recgpt.agents.planner import planner_schema
    from recgpt.prompts import arbiter, expert, planner, shared

    text = "".join(inspect.getsource(m) for m in (shared, planner, expert, arbiter))
    text += json.dumps([s.model_json_schema() for s in (planner_schema(3), expert_schema(5), arbiter_schema(5, 10))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_hash(config: EvalConfig, dataset: Dataset, model: str | None) -> str:
    """Key of a per-user results store. The user count is not in it: a user's answer does not depend on how many
    others were sampled, so a 100-user run reads the users it shares with an earlier 200-user run (with seed-sampled
    users, the smaller sample is the larger one's prefix whenever `random.sample` takes the same path for both)."""
    payload: dict[str, Any] = {"config": config.model_dump(exclude={"concurrency", "users"}), "data": dataset.content_hash()}
    if config.method in LLM_METHODS:
        from dataclasses import asdict

        ctx = asdict(recgpt_context(config))
        for volatile in ("base_url", "api_key", "request_timeout_s", "max_retries", *TAG_IRRELEVANT_CONTEXT):
            ctx.pop(volatile, None)
        for added_later, default in (("compression", "text"), ("adaptor_dir", "")):
            if ctx.get(added_later) == default:  # fields added after results were stored: at their default, hashes stay
                ctx.pop(added_later)
        payload.update(context=ctx, model=model, prompts=prompts_fingerprint())
    if config.method == "sasrec":
        payload["sasrec"] = baselines.SASRec().hparams
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


class ResultStore:
    """Append-only JSONL of finished users; the last line for a user wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, UserResult]:
        results: dict[str, UserResult] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        result = UserResult.model_validate_json(line)
                    except ValueError:
                        continue  # a line cut by a kill mid-write: that user is simply redone
                    results[result.user_id] = result
        return results

    def append(self, result: UserResult) -> None:
        append_line(self.path, result.model_dump_json())


def _base_result(dataset: Dataset, user_id: str, split: str, levels: tuple[str, ...]) -> tuple[UserResult, list[str]]:
    from recgpt.eval.metrics import is_new_interest

    example = dataset.example(user_id, split)
    assert example.target is not None
    target = dataset.items[example.target.item_id]
    history_items = dataset.items_of(example.history)
    result = UserResult(
        user_id=user_id, target_item=target.item_id,
        target_labels={lv: sorted(category_key(target, lv)) for lv in levels},
        new_interest={lv: is_new_interest(history_items, target, lv) for lv in levels},
    )
    return result, [e.item_id for e in example.history]


def run_classical(config: EvalConfig, dataset: Dataset, users: list[str], store: ResultStore,
                  show_progress: bool = True) -> None:
    from recgpt.settings import get_settings
    from recgpt.tools.retrieval import get_index

    levels = levels_of(dataset)
    done = store.load()
    todo = [u for u in users if u not in done or done[u].error]
    if not todo:
        return
    k_max = max(config.k_items)
    train = baselines.training_sequences(dataset, config.split)
    index = get_index(dataset, get_settings().index_dir) if config.method == "category" else None
    model: Any = None
    if config.method == "popularity":
        model = baselines.Popularity().fit(train)
    elif config.method == "itemknn":
        model = baselines.ItemKNN().fit(train)
    elif config.method == "sasrec":
        model = baselines.SASRec(seed=config.seed, show_progress=show_progress).fit(train)
    for user_id in _progress(todo, f"{config.method} on {len(todo)} users", show_progress):
        started = time.perf_counter()
        result, history = _base_result(dataset, user_id, config.split, levels)
        if config.method == "category":
            categories = baselines.history_categories(dataset, history)[: config.k_tags]
            hits = index.search_items(categories, k_max, exclude=set(history)) if categories else []
            result.ranked_items = interleave([[h.item_id for h in lst] for lst in hits], k_max)
            result.ranked_categories = categories
            result.tags = categories
        else:
            result.ranked_items = model.recommend(history, k_max)
            result.ranked_categories = _categories_of(dataset, result.ranked_items, config.k_tags)
        result.wall_s = time.perf_counter() - started
        store.append(result)


def _categories_of(dataset: Dataset, items: list[str], k: int) -> list[str]:
    out: list[str] = []
    for item_id in items:
        category = dataset.items[item_id].category
        if category and category not in out:
            out.append(category)
            if len(out) >= k:
                break
    return out


def _progress_bar(show: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not show)


def _progress(items: list[str], label: str, show: bool):
    with _progress_bar(show) as progress:
        task = progress.add_task(label, total=len(items))
        for item in items:
            yield item
            progress.advance(task)


async def _run_llm_method(config: EvalConfig, dataset: Dataset, users: list[str], store: ResultStore,
                          answer: Any, show_progress: bool) -> None:
    """The loop shared by LLM methods: resumable, `concurrency` users in flight, every result stored.

    `answer(ctx, user_id, history, result)` fills `result` (tags, ranked lists, accounting) for one user.
    """
    from recgpt.errors import EndpointError
    from recgpt.runner import check_endpoint

    done = store.load()
    todo = [u for u in users if u not in done or done[u].error]
    if not todo:
        return
    levels = levels_of(dataset)
    ctx = recgpt_context(config)
    check_endpoint(ctx)
    gate = asyncio.Semaphore(config.concurrency)

    async def one(user_id: str) -> UserResult:
        async with gate:
            started = time.perf_counter()
            result, history = _base_result(dataset, user_id, config.split, levels)
            try:
                await answer(ctx, user_id, history, result)
            except EndpointError as exc:
                result.error = str(exc)
            result.wall_s = time.perf_counter() - started
            return result

    with _progress_bar(show_progress) as progress:
        task = progress.add_task(f"{config.method} on {len(todo)} users (concurrency {config.concurrency})", total=len(todo))
        failures = 0
        for next_done in asyncio.as_completed([one(u) for u in todo]):
            result = await next_done
            store.append(result)
            failures += result.error is not None
            progress.advance(task)
    if failures == len(todo):
        raise RecGPTError(f"every user failed; first error: {store.load()[todo[0]].error}")


def has_timestamps(dataset: Dataset) -> bool:
    return any(e.timestamp is not None for u in dataset.users.values() for e in u.interactions[:1])


async def answer_with_graph(graph: Any, index: Any, config: EvalConfig, dataset: Dataset, ctx: Any, user_id: str,
                            history: list[str], result: UserResult) -> dict[str, Any]:
    """Run a recommendation graph (V2, or the V1 baseline) for one user and fill `result`; returns the state."""
    from recgpt.errors import EndpointError
    from recgpt.render import usage_totals
    from recgpt.tools.llm import ENDPOINT_DOWN

    payload = {"user_id": user_id, "dataset": config.dataset, "split": config.split,
               "date": None if has_timestamps(dataset) else config.date}
    state = await graph.ainvoke(payload, context=ctx)
    tags = [t.tag for t in state.get("tags", [])]
    hits = await asyncio.to_thread(index.search_items, tags, max(config.k_items), set(history)) if tags else []
    result.tags = tags
    result.ranked_items = interleave([[h.item_id for h in lst] for lst in hits], max(config.k_items))
    result.ranked_categories = [r.category or "" for r in state.get("recommendations", [])]
    result.flags = list(state.get("flags", []))
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
    from recgpt.graph import build_graph
    from recgpt.settings import get_settings
    from recgpt.tools.retrieval import get_index

    graph = build_graph()
    index = get_index(dataset, get_settings().index_dir)

    async def answer(ctx: Any, user_id: str, history: list[str], result: UserResult) -> None:
        await answer_with_graph(graph, index, config, dataset, ctx, user_id, history, result)

    await _run_llm_method(config, dataset, users, store, answer, show_progress)


def run_eval(config: EvalConfig, home: Path, show_progress: bool = True) -> tuple[EvalConfig, list[UserResult], Path]:
    """Run (or resume) one method; return the per-user results in sampled-user order."""
    dataset = load_dataset(config.dataset)
    Split(config.split)
    users = sample_users(dataset, config.split, config.users, config.seed)
    model = None
    if config.method in LLM_METHODS:
        from recgpt.services.endpoints import endpoint_of, served_model_identity

        ctx = recgpt_context(config)
        endpoint = endpoint_of(ctx)
        model = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
        if ctx.compression == "hybrid":  # results depend on the adaptor's weights: key them by its content
            from recgpt.tools import hybrid

            assembler = hybrid.register(endpoint.base_url, endpoint.model, Path(ctx.adaptor_dir) if ctx.adaptor_dir else None,
                                        endpoint.api_key)
            model += f"+adaptor:{assembler.adaptor_fingerprint}"
    store = ResultStore(home / "eval" / f"{config.method}-{config_hash(config, dataset, model)}.jsonl")
    if config.method == "recgpt":
        asyncio.run(run_recgpt(config, dataset, users, store, show_progress))
    elif config.method == "expert":
        from recgpt.eval.policy import run_expert

        asyncio.run(run_expert(config, dataset, users, store, show_progress))
    else:
        run_classical(config, dataset, users, store, show_progress)
    results = store.load()
    return config, [results[u] for u in users if u in results], store.path
