"""`recgpt bench-models`: the registry's models side by side on this machine, to pick the default by data.

For each model the command prepares it, starts its own vLLM server (one server at a time: two engines
on a 2-core machine stall), and measures:

- server start time (launch to healthy) and resident memory of the server's process tree after the work;
- the policy alone (`recgpt eval --method expert`) and the full graph (`recgpt eval --method recgpt`) on
  the same sampled users, scored exactly as `recgpt eval` scores them;
- the share of LLM calls whose first answer was schema-valid, the share of tags that copy a category
  path, a category name or a history title (`recgpt.eval.tag_copies`), completion tokens per user;
- users/min of the full graph at saturation, by Little's law: `concurrency / mean time in system` of
  the users of a run that always had `concurrency` users in flight. The per-user results are kept in the
  resumable eval stores, so a killed bench resumes without redoing users, and the figure does not depend
  on how the run was split across invocations.

The served name is the one `recgpt serve` uses, so these runs share their per-user stores with
`recgpt eval` runs of the same configuration on the same weights (the store key is the served weights).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import BaseModel, Field

from recgpt import plots
from recgpt.eval.harness import run_eval
from recgpt.eval.report import summarise, write_report_files
from recgpt.eval.runs import EvalConfig, UserResult, levels_of
from recgpt.eval.tag_copies import copy_shares
from recgpt.services.endpoints import served_model_identity
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.serving.model_prep import REGISTRY, prepare_model, registry_entry
from recgpt.tools.serving.server import ServerConfig, start_server


class ModelBenchConfig(BaseModel):
    models: list[str] = Field(default_factory=lambda: list(REGISTRY), description="Registry names, compared in this order.")
    dataset: str = "office"
    split: Literal["validation", "test"] = "test"
    expert_users: int = Field(default=200, ge=1, description="Users of the policy-alone phase.")
    expert_k: int = Field(default=5, ge=1, description="Tags of the policy-alone phase (K of its cat HR@K).")
    graph_users: int = Field(default=200, ge=1, description="Users of the full-graph phase.")
    graph_k: int = Field(default=10, ge=1, description="Final tags of the full graph (K of its cat HR@K).")
    seed: int = 0
    concurrency: int = Field(default=16, ge=1, description="Users in flight (saturation) in both phases.")
    port: int = Field(default=8000, ge=1, le=65535)


def server_rss_bytes(pid: int) -> int:
    """Resident memory of a server and all its children (vLLM's engine core is a child process)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def phase_figures(config: EvalConfig, results: list[UserResult], concurrency: int) -> dict[str, Any]:
    """Quality as `recgpt eval` computes it, plus validity, copies, tokens and throughput."""
    dataset = default_registry().dataset(config.dataset)
    summary = summarise(config, results, levels_of(dataset))
    ok = [r for r in results if r.error is None]
    calls = sum(r.llm_calls for r in ok)
    mean_wall = statistics.fmean([r.wall_s for r in ok]) if ok else 0.0
    users_per_min = 60.0 * concurrency / mean_wall if mean_wall else 0.0
    cores = os.cpu_count() or 1
    figures = {
        "users_scored": summary["users_scored"], "users_failed": summary["users_failed"],
        "flagged_users": summary["flagged_users"], "metrics": summary["metrics"],
        "new_interest_users": summary["new_interest_users"], "new_interest_metrics": summary["new_interest_metrics"],
        "first_try_valid_share": sum(r.first_try_valid_calls for r in ok) / calls if calls else 0.0,
        "llm_calls_per_user": summary.get("llm_calls_per_user", 0.0),
        "prompt_tokens_per_user": summary.get("prompt_tokens_per_user", 0.0),
        "completion_tokens_per_user": summary.get("completion_tokens_per_user", 0.0),
        "max_completion_tokens_per_user": max((r.completion_tokens for r in ok), default=0),
        "tag_copies": copy_shares({r.user_id: r.tags for r in ok}, dataset, config.split),
        "tags_per_user": summary.get("tags_per_user", 0.0), "tag_diversity": summary.get("tag_diversity", 0.0),
        "mean_user_latency_s": mean_wall, "users_per_min": users_per_min,
        "server_cpu_s_per_user": cores * 60.0 / users_per_min if users_per_min else 0.0,
    }
    return figures


def _with_endpoint(base_url: str):
    """Point the process's settings (and so every Context default) at `base_url` while a model is measured."""
    class _Scope:
        def __enter__(self) -> None:
            self.previous = os.environ.get("RECGPT_BASE_URL")
            os.environ["RECGPT_BASE_URL"] = base_url
            get_settings.cache_clear()

        def __exit__(self, *exc: object) -> None:
            if self.previous is None:
                os.environ.pop("RECGPT_BASE_URL", None)
            else:
                os.environ["RECGPT_BASE_URL"] = self.previous
            get_settings.cache_clear()

    return _Scope()


def measure_model(name: str, config: ModelBenchConfig, show_progress: bool = True) -> dict[str, Any]:
    settings = get_settings()
    entry = registry_entry(name)
    model_dir = prepare_model(settings.models_dir, name)
    server = ServerConfig(model_dir=model_dir, port=config.port)
    started = time.perf_counter()
    handle = start_server(server, settings.run_dir, timeout=900)
    start_s = time.perf_counter() - started
    phases: dict[str, Any] = {}
    try:
        with _with_endpoint(server.base_url):
            identity = served_model_identity(server.base_url, server.served_name)
            for phase, method, users, k in (("expert", "expert", config.expert_users, config.expert_k),
                                            ("graph", "recgpt", config.graph_users, config.graph_k)):
                eval_config = EvalConfig(dataset=config.dataset, split=config.split, users=users, seed=config.seed,
                                         method=method, k_tags=k, concurrency=config.concurrency)  # type: ignore[arg-type]
                eval_config, results, store = run_eval(eval_config, settings.home, show_progress)
                phases[phase] = {**phase_figures(eval_config, results, config.concurrency), "results_file": store.name}
        rss = server_rss_bytes(handle.process.pid)
    finally:
        handle.stop()
    return {"model": name, "title": entry.title, "gguf_sha256": entry.gguf_sha256, "served": identity,
            "server_start_s": start_s, "server_rss_gib": rss / 2**30, **phases}


def _standard_error(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-9) / max(n, 1))


def decide(models: dict[str, dict[str, Any]], graph_k: int, level: str) -> dict[str, Any]:
    """Quality first: the best full-graph cat HR@K wins unless within 2 standard errors of another model,
    in which case the one with more targets hit per server CPU-hour wins."""
    key = f"cat_hr@{graph_k}_{level}"
    scored = {name: (m["graph"]["metrics"].get(key, 0.0), m["graph"]["users_scored"]) for name, m in models.items()}
    best = max(scored, key=lambda name: scored[name][0])
    tied = [name for name, (hr, n) in scored.items()
            if scored[best][0] - hr <= 2 * math.hypot(_standard_error(hr, n), _standard_error(scored[best][0], scored[best][1]))]
    efficiency = {name: hits_per_cpu_hour(models[name], key) for name in models}
    chosen = max(tied, key=lambda name: efficiency[name]) if len(tied) > 1 else best
    reason = (f"{chosen} has the best full-graph {key} ({scored[chosen][0]:.3f})" if len(tied) == 1 else
              f"{', '.join(tied)} are within 2 standard errors on {key}; {chosen} hits more targets per server CPU-hour")
    return {"chosen": chosen, "metric": key, "reason": reason, "hits_per_cpu_hour": efficiency}


def hits_per_cpu_hour(model: dict[str, Any], key: str) -> float:
    cpu_s = model["graph"]["server_cpu_s_per_user"]
    return model["graph"]["metrics"].get(key, 0.0) * 3600.0 / cpu_s if cpu_s else 0.0


def run_model_bench(config: ModelBenchConfig, cache_dir: Path, show_progress: bool = True,
                    on_model: Any = None) -> dict[str, Any]:
    """Measure every model (a model already measured under the same config is read back, not rerun)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict[str, Any]] = {}
    for name in config.models:
        registry_entry(name)  # unknown names fail before any server starts
    for name in config.models:
        cached = cache_dir / f"{name}.json"
        payload = json.loads(cached.read_text()) if cached.is_file() else None
        if payload is None or payload.get("config") != config.model_dump(exclude={"models"}):
            payload = {"config": config.model_dump(exclude={"models"}), **measure_model(name, config, show_progress)}
            cached.write_text(json.dumps(payload, indent=2))
        models[name] = {k: v for k, v in payload.items() if k != "config"}
        if on_model is not None:
            on_model(name, models[name])
    level = "l2" if "cat_hr@" + str(config.graph_k) + "_l2" in next(iter(models.values()))["graph"]["metrics"] else "genre"
    return {"config": config.model_dump(), "models": models, "decision": decide(models, config.graph_k, level),
            "cores": os.cpu_count()}


ROWS: list[tuple[str, str, str]] = [
    # (label, path in the model's result, format)
    ("policy alone: cat HR@{ek} L2", "expert.metrics.cat_hr@{ek}_l2", ".3f"),
    ("policy alone: cat HR@{ek} leaf", "expert.metrics.cat_hr@{ek}_leaf", ".3f"),
    ("policy alone: completion tokens / user", "expert.completion_tokens_per_user", ".0f"),
    ("policy alone: schema-valid on first try", "expert.first_try_valid_share", ".1%"),
    ("policy alone: tags copying a path / category name / title", "expert.tag_copies", "copies"),
    ("full graph: cat HR@{gk} L2", "graph.metrics.cat_hr@{gk}_l2", ".3f"),
    ("full graph: cat HR@{gk} leaf", "graph.metrics.cat_hr@{gk}_leaf", ".3f"),
    ("full graph: item HR@10", "graph.metrics.item_hr@10", ".3f"),
    ("full graph: item HR@30", "graph.metrics.item_hr@30", ".3f"),
    ("full graph: new-interest cat HR@{gk} L2", "graph.new_interest_metrics.cat_hr@{gk}_l2", ".3f"),
    ("full graph: schema-valid on first try", "graph.first_try_valid_share", ".1%"),
    ("full graph: tags copying a path / category name / title", "graph.tag_copies", "copies"),
    ("full graph: completion tokens / user (mean)", "graph.completion_tokens_per_user", ".0f"),
    ("full graph: completion tokens / user (max)", "graph.max_completion_tokens_per_user", ".0f"),
    ("full graph: prompt tokens / user", "graph.prompt_tokens_per_user", ".0f"),
    ("full graph: users with a flagged partial result", "graph.flagged_users", "d"),
    ("full graph: users/min at saturation", "graph.users_per_min", ".2f"),
    ("full graph: server CPU-seconds / user", "graph.server_cpu_s_per_user", ".1f"),
    ("server start (s)", "server_start_s", ".0f"),
    ("server resident memory (GiB)", "server_rss_gib", ".2f"),
]


def _lookup(model: dict[str, Any], path: str) -> Any:
    value: Any = model
    head, _, rest = path.partition(".")
    value = value.get(head, {})
    if rest.startswith(("metrics.", "new_interest_metrics.")):
        group, _, metric = rest.partition(".")
        return value.get(group, {}).get(metric)
    return value.get(rest) if rest else value


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "—"
    if fmt == "copies":
        return f"{value['path']:.0%} / {value['category_name']:.0%} / {value['title']:.0%}"
    return format(value, fmt)


def markdown(result: dict[str, Any], model: str) -> str:
    cfg = result["config"]
    names = list(result["models"])
    ek, gk = cfg["expert_k"], cfg["graph_k"]
    lines = [f"# Models side by side: {', '.join(names)} ({cfg['dataset']} {cfg['split']})", "",
             f"Measured on this machine ({result['cores']} CPU cores, vLLM CPU, float32, one server at a time). Policy alone: "
             f"{cfg['expert_users']} users, one expert call each, K={ek}. Full graph: {cfg['graph_users']} users, planner → "
             f"experts → arbiter → retrieval, explanations and judge off, K={gk}. {cfg['concurrency']} users in flight; "
             f"seed {cfg['seed']} (the `recgpt eval` sample).", "",
             "| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, path, fmt in ROWS:
        path = path.format(ek=ek, gk=gk)
        lines.append(f"| {label.format(ek=ek, gk=gk)} | " + " | ".join(_cell(_lookup(result['models'][n], path), fmt) for n in names) + " |")
    d = result["decision"]
    lines += ["", "Targets hit per server CPU-hour (full graph, " + d["metric"] + "): "
              + ", ".join(f"{n} {v:.1f}" for n, v in d["hits_per_cpu_hour"].items()), "",
              "## Decision", "", f"Default: **{d['chosen']}**. {d['reason']}.", "",
              "## Models", ""]
    lines += [f"- `{n}`: {m['title']}; GGUF sha256 `{m['gguf_sha256']}`; served as `{m['served']}`" for n, m in result["models"].items()]
    lines += ["", "## Definitions", "",
              "- cat HR@K, item HR@K, new-interest slice: as in `reports/eval-office-test.md` (`recgpt eval`).",
              "- schema-valid on first try: LLM calls whose first answer passed the output schema (no re-sample, no failure).",
              "- tags copying: share of all tags that paste a category path, equal one category level's name, or repeat "
              "3+ words of a history title verbatim (`recgpt/eval/tag_copies.py`).",
              "- users/min at saturation: Little's law, concurrency / mean time a user spends in the system, over the "
              "full-graph users; server CPU-seconds / user = cores × 60 / (users/min).",
              "- server start: launch to healthy (eager mode); resident memory: RSS of the server and its children after the work.",
              "", "## Reproduce", "",
              f"    recgpt bench-models --models {','.join(names)} --expert-users {cfg['expert_users']} "
              f"--graph-users {cfg['graph_users']} --concurrency {cfg['concurrency']}", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path | None:
    cfg, names = result["config"], list(result["models"])
    panels = [
        ("quality (cat HR, L2)", [(f"policy @{cfg['expert_k']}", f"expert.metrics.cat_hr@{cfg['expert_k']}_l2"),
                                  (f"graph @{cfg['graph_k']}", f"graph.metrics.cat_hr@{cfg['graph_k']}_l2")]),
        ("completion tokens / user", [("policy", "expert.completion_tokens_per_user"), ("graph", "graph.completion_tokens_per_user")]),
        ("full graph throughput", [("users/min", "graph.users_per_min")]),
    ]
    with plots.figure(path, 1, len(panels), size=(13, 4)) as (_, axes):
        width = 0.8 / len(names)
        for ax, (title, bars) in zip(axes, panels):
            for i, name in enumerate(names):
                values = [_lookup(result["models"][name], p) or 0.0 for _, p in bars]
                ax.bar([x + i * width for x in range(len(bars))], values, width, label=name)
            ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(bars))], [b for b, _ in bars])
            ax.set_title(title)
        axes[0].legend()
    return path


def write_model_bench_report(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path | None]:
    models = ", ".join(f"{n}: {m['served']}" for n, m in result["models"].items())
    stem = out_dir / f"models-{Path(result['config']['dataset']).name}"
    return write_report_files(stem, result, models, markdown, plot)
