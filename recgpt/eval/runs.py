"""The run machinery shared by every evaluation and by training's LLM phases: what a run is (config, per-user
result), where finished work goes (append-only JSONL stores that a killed run resumes from), how jobs run
(`concurrency` in flight, failures counted, never lost) and how progress shows."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recgpt.data import Dataset
from recgpt.errors import EndpointError, RecGPTError
from recgpt.eval.metrics import category_key, is_new_interest
from recgpt.schema.context import Context
from recgpt.services.endpoints import check_endpoint
from recgpt.tools.jsonl import append_line

Method = Literal["popularity", "category", "itemknn", "sasrec", "sasrec_categories", "recgpt", "expert", "blend", "fusion",
                 "oracle_leaf", "oracle_l2"]
METHODS: tuple[str, ...] = ("popularity", "category", "itemknn", "sasrec", "sasrec_categories", "recgpt", "expert", "blend",
                            "fusion", "oracle_leaf", "oracle_l2")
CEILINGS: tuple[str, ...] = ("oracle_leaf", "oracle_l2")
"""Retrieval ceilings, not recommenders: the held-out target's own category (full path / first two levels) as the one
grounded tag, through the same retriever as recgpt's tags. They read the target by design; never a channel."""
LLM_METHODS: tuple[str, ...] = ("recgpt", "expert")
"""`expert` is one Distributed Expert call with the training persona: the policy `recgpt train` optimises, alone."""
CLASSICAL: tuple[str, ...] = ("popularity", "category", "itemknn", "sasrec", "sasrec_categories")


def levels_of(dataset: Dataset) -> tuple[str, ...]:
    """Category levels scored: genre for flat-labelled catalogues, else L2 and leaf."""
    return ("genre",) if any(item.genres for item in dataset.items.values()) else ("l2", "leaf")


class UserSample(BaseModel):
    """The users a run scores: `users` of a split of a dataset, sampled with `seed` (`harness.sample_users`). Every
    evaluation that samples users starts from these fields; a subclass may change their defaults."""

    dataset: str = "office"
    split: Literal["validation", "test"] = "test"
    users: int = Field(default=200, ge=1)
    seed: int = 0

    def user_sample(self) -> dict[str, Any]:
        """These four fields alone, to hand the same users on to another run's config."""
        return self.model_dump(include=set(UserSample.model_fields))


class EvalConfig(UserSample):
    """Everything that defines one evaluation run (hashed into the results file name)."""

    method: Method = "recgpt"
    k_tags: int = Field(default=10, ge=1, description="K for tag/category HR@K (and the number of final tags).")
    k_items: list[int] = Field(default_factory=lambda: [10, 30], description="K values for item HR/NDCG.")
    concurrency: int = Field(default=8, ge=1)
    date: str = Field(default="2026-11-25", description="Situation date for datasets without timestamps (fixed: reproducible).")
    context: dict[str, Any] = Field(default_factory=dict, description="recgpt runtime Context overrides.")
    merge: Literal["interleave", "score"] = Field(default="interleave", description=(
        "recgpt/expert: the LLM channel's flat item list: 'interleave' (round-robin over the tags' lists, best tag "
        "first) or 'score' (SASRec's ranking restricted to the final tags' categories; re-ranks stored answers, no "
        "LLM call)."))
    quota: float | None = Field(default=None, ge=0.0, le=1.0, description=(
        "blend / fusion: the LLM channel's share (of the K slots; of the reciprocal-rank weight); None = tuned over a "
        "grid (validation only)."))

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
    pool: list[dict[str, Any]] = Field(default_factory=list)
    """recgpt: the arbiter's deduplicated pool (tag, category, persona_index, rank: its place among the final tags,
    None if not kept), so that an ordering of the final tags can be re-scored without asking the LLM again."""
    shown_items: int = 0
    """Items the graph showed under the user's tags (recgpt): what a shopper sees, `items_per_tag` per tag."""
    shown_in_category: int = 0
    """Of those, items inside their tag's category (the path or below)."""
    shown_in_family: int = 0
    """Of those, items inside their tag's category or its parent's."""
    shown_repeats: int = 0
    """Shown items that another tag of the same user already showed."""
    error: str | None = None


def categories_of(dataset: Dataset, items: list[str], k: int) -> list[str]:
    """The first `k` distinct categories of ranked items: how a method without tags gets its cat HR@K."""
    out: list[str] = []
    for item_id in items:
        category = dataset.items[item_id].category
        if category and category not in out:
            out.append(category)
            if len(out) >= k:
                break
    return out


def recgpt_context(config: EvalConfig) -> Context:
    # Tag/item metrics do not depend on explanations or the judge: both off (see `recgpt eval-explain`).
    overrides = {"num_tags": config.k_tags, "tags_per_expert": 5, "explanation_mode": "off", "judge_mode": "off", **config.context}
    return Context(**overrides)


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


def base_result(dataset: Dataset, user_id: str, split: str, levels: tuple[str, ...]) -> tuple[UserResult, list[str]]:
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


class KeyedStore:
    """Append-only JSONL of finished LLM results, keyed by a string; the last line for a key wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.values: dict[str, Any] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.values[row["key"]] = row["value"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a kill mid-write: redone

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value
        append_line(self.path, json.dumps({"key": key, "value": value}))


async def run_jobs(store: KeyedStore, jobs: dict[str, Callable[[], Awaitable[Any]]], label: str, concurrency: int,
                   show_progress: bool) -> None:
    """Run the jobs whose key is not stored yet, `concurrency` at a time; store each as it finishes.

    Endpoint failures do not lose finished work: they are counted and raised after the phase.
    """
    todo = {k: job for k, job in jobs.items() if k not in store}
    if not todo:
        return
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def one(key: str, job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            try:
                store.put(key, await job())
            except EndpointError as exc:
                failures.append(str(exc))

    with progress_bar(show_progress) as progress:
        task = progress.add_task(f"{label} ({len(todo)} calls/targets)", total=len(todo))
        for finished in asyncio.as_completed([one(k, j) for k, j in todo.items()]):
            await finished
            progress.advance(task)
    if failures:
        raise RecGPTError(f"{label}: {len(failures)} of {len(todo)} failed ({failures[0]}); rerun to resume the rest")


def progress_bar(show: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not show)


def iter_progress(items: list[str], label: str, show: bool) -> Iterator[str]:
    with progress_bar(show) as progress:
        task = progress.add_task(label, total=len(items))
        for item in items:
            yield item
            progress.advance(task)


async def run_llm_method(config: EvalConfig, dataset: Dataset, users: list[str], store: ResultStore,
                          answer: Any, show_progress: bool) -> None:
    """The loop shared by LLM methods: resumable, `concurrency` users in flight, every result stored.

    `answer(ctx, user_id, history, result)` fills `result` (tags, ranked lists, accounting) for one user.
    """
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
            result, history = base_result(dataset, user_id, config.split, levels)
            try:
                await answer(ctx, user_id, history, result)
            except EndpointError as exc:
                result.error = str(exc)
            result.wall_s = time.perf_counter() - started
            return result

    with progress_bar(show_progress) as progress:
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
