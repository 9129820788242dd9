"""`recgpt load`: many concurrent user graphs against one server for a while; does anything break or leak?

`concurrency` workers each run one user's graph after another (users drawn from a seeded shuffle of the split,
cycling) until `duration_s` has passed; then no new user starts and the ones in flight finish (drain). Every
started run ends in exactly one outcome:

- `ok`: a full result; `flagged`: a partial result with flags (an agent failed and was absorbed);
- `error`: a clear `RecGPTError` (e.g. the endpoint down at the planner) with its one-line message;
- `unhandled`: any other exception, a bug (the goal is 0).

`lost` = started - (ok + flagged + error + unhandled) must be 0. The process's RSS is sampled every few seconds
(bounded memory: the second half of the run should not keep growing), and latency percentiles are computed over
finished runs. Writes reports/load-<dataset>.md/.json/.png.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import BaseModel, Field

from recgpt import plots
from recgpt.data import Split
from recgpt.errors import RecGPTError
from recgpt.eval.report import write_report_files
from recgpt.graph import Context, build_graph
from recgpt.services.resources import default_registry, resolve

Outcome = Literal["ok", "flagged", "error", "unhandled"]


class LoadConfig(BaseModel):
    dataset: str = "office"
    split: Literal["full", "validation", "test"] = "test"
    concurrency: int = Field(default=64, ge=1, description="User graphs in flight at once.")
    duration_s: float = Field(default=300.0, gt=0, description="Start new users for this long, then drain.")
    seed: int = 0
    sample_every_s: float = Field(default=2.0, gt=0)


class RunRecord(BaseModel):
    user_id: str
    outcome: Outcome
    started_s: float
    latency_s: float
    llm_calls: int = 0
    message: str = ""


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def run_load(config: LoadConfig, ctx: Context, graph: Any = None, progress: Any = None) -> dict[str, Any]:
    dataset = default_registry().dataset(config.dataset)
    Split(config.split)
    users = sorted(dataset.users, key=str)
    random.Random(config.seed).shuffle(users)
    if not users:
        raise RecGPTError(f"dataset {config.dataset} has no users")
    graph = graph or build_graph(resolve(dataset))
    records: list[RunRecord] = []
    started_runs = 0
    next_user = 0
    t0 = time.perf_counter()
    memory: list[tuple[float, float]] = [(0.0, rss_mib())]
    stop_sampling = asyncio.Event()

    async def sample() -> None:
        while not stop_sampling.is_set():
            try:
                await asyncio.wait_for(stop_sampling.wait(), timeout=config.sample_every_s)
            except asyncio.TimeoutError:
                pass
            memory.append((time.perf_counter() - t0, rss_mib()))

    async def one(user_id: str) -> RunRecord:
        began = time.perf_counter()
        payload = {"user_id": user_id, "dataset": config.dataset, "split": config.split}
        try:
            state = await graph.ainvoke(payload, context=ctx)
        except RecGPTError as exc:
            return RunRecord(user_id=user_id, outcome="error", started_s=began - t0, latency_s=time.perf_counter() - began,
                             message=str(exc).splitlines()[0][:300])
        except Exception as exc:  # noqa: BLE001 - counted and reported: the point of a load test
            return RunRecord(user_id=user_id, outcome="unhandled", started_s=began - t0, latency_s=time.perf_counter() - began,
                             message=f"{type(exc).__name__}: {str(exc)[:300]}")
        flags = state.get("flags", [])
        return RunRecord(user_id=user_id, outcome="flagged" if flags else "ok", started_s=began - t0,
                         latency_s=time.perf_counter() - began, llm_calls=len(state.get("calls", [])),
                         message=flags[0][:300] if flags else "")

    async def worker() -> None:
        nonlocal started_runs, next_user
        while time.perf_counter() - t0 < config.duration_s:
            user_id = users[next_user % len(users)]
            next_user += 1
            started_runs += 1
            record = await one(user_id)
            records.append(record)
            if progress is not None:
                progress(record)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    elapsed = time.perf_counter() - t0
    stop_sampling.set()
    await sampler
    return summarise(config, ctx, records, started_runs, elapsed, memory)


def summarise(config: LoadConfig, ctx: Context, records: list[RunRecord], started: int, elapsed: float,
              memory: list[tuple[float, float]]) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in records)
    latencies = [r.latency_s for r in records if r.outcome in ("ok", "flagged")]
    half = [m for t, m in memory if t >= elapsed / 2] or [memory[-1][1]]
    first_half = [m for t, m in memory if t < elapsed / 2] or [memory[0][1]]
    return {
        "config": config.model_dump(),
        "context": {k: v for k, v in vars(ctx).items() if k not in ("api_key",)},
        "started": started, "finished": len(records), "lost": started - len(records),
        "outcomes": {k: outcomes.get(k, 0) for k in ("ok", "flagged", "error", "unhandled")},
        "elapsed_s": elapsed, "users_per_min": len(records) / elapsed * 60 if elapsed else 0.0,
        "latency_s": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99),
                      "max": max(latencies, default=None), "mean": statistics.fmean(latencies) if latencies else None},
        "llm_calls_per_user": statistics.fmean([r.llm_calls for r in records]) if records else 0.0,
        "rss_mib": {"start": memory[0][1], "peak": max(m for _, m in memory), "end": memory[-1][1],
                    "first_half_peak": max(first_half), "second_half_peak": max(half)},
        "memory_samples": memory,
        "errors": Counter(r.message for r in records if r.outcome in ("error", "unhandled")).most_common(10),
        "flag_kinds": Counter(r.message.split(":")[0] for r in records if r.outcome == "flagged").most_common(10),
        "records": [r.model_dump() for r in records],
    }


def markdown(result: dict[str, Any], model: str) -> str:
    cfg, lat, rss, out = result["config"], result["latency_s"], result["rss_mib"], result["outcomes"]

    def f(v: float | None, d: int = 1) -> str:
        return "—" if v is None else f"{v:.{d}f}"

    lines = [f"# Load: {cfg['concurrency']} concurrent user graphs on {cfg['dataset']}/{cfg['split']}", "",
             f"Model `{model}`; new users started for {cfg['duration_s']:.0f} s, then the runs in flight drained "
             f"(total {result['elapsed_s']:.0f} s). Users drawn from a seed-{cfg['seed']} shuffle of the split.", "",
             "| started | finished | lost | ok | flagged | error | unhandled | users/min | LLM calls/user |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {result['started']} | {result['finished']} | **{result['lost']}** | {out['ok']} | {out['flagged']} | "
             f"{out['error']} | **{out['unhandled']}** | {result['users_per_min']:.2f} | {result['llm_calls_per_user']:.2f} |", "",
             "| latency per user (s) | p50 | p95 | p99 | max | mean |", "|---|---:|---:|---:|---:|---:|",
             f"| finished runs | {f(lat['p50'])} | {f(lat['p95'])} | {f(lat['p99'])} | {f(lat['max'])} | {f(lat['mean'])} |", "",
             f"Client process RSS (MiB): start {rss['start']:.0f}, peak {rss['peak']:.0f} (first half {rss['first_half_peak']:.0f}, "
             f"second half {rss['second_half_peak']:.0f}), end {rss['end']:.0f}.", ""]
    if result["errors"]:
        lines += ["Errors and unhandled exceptions (most common):", ""] + [f"- {n}× {msg}" for msg, n in result["errors"]] + [""]
    if result["flag_kinds"]:
        lines += ["Flagged partial results, by first flag:", ""] + [f"- {n}× {kind}" for kind, n in result["flag_kinds"]] + [""]
    ctx = result["context"]
    lines += ["Context: " + ", ".join(f"{k}={ctx[k]}" for k in ("num_personas", "tags_per_expert", "num_tags",
                                                                 "explanation_mode", "judge_mode", "request_timeout_s")), "",
              "Reproduce:", "",
              f"    recgpt load --concurrency {cfg['concurrency']} --duration {cfg['duration_s']:.0f} --dataset {cfg['dataset']} "
              f"--split {cfg['split']} --personas {ctx['num_personas']} --tags-per-expert {ctx['tags_per_expert']} --tags {ctx['num_tags']} "
              f"--explanations {ctx['explanation_mode']} --judge {ctx['judge_mode']}", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path | None:
    with plots.figure(path, 1, 2, size=(11, 4)) as (_, (left, right)):
        done = sorted(r["started_s"] + r["latency_s"] for r in result["records"])
        left.step(done, range(1, len(done) + 1), where="post")
        left.set_xlabel("seconds"), left.set_ylabel("users finished"), left.set_title("throughput")
        t, m = zip(*result["memory_samples"]) if result["memory_samples"] else ((), ())
        right.plot(t, m)
        right.set_xlabel("seconds"), right.set_ylabel("RSS MiB"), right.set_title("client memory")
    return path


def write_load_report(result: dict[str, Any], out_dir: Path, model: str) -> tuple[Path, Path, Path | None]:
    stem = out_dir / f"load-{Path(result['config']['dataset']).name}"
    return write_report_files(stem, result, model, markdown, plot)
