"""`recgpt bench`: RecGPT-V1 (multi-route) vs V2 (planner/experts/arbiter) on the same users, server
and concurrency, in one run.

Two setups, run together by default:
- `architecture`: V1's routes read V2's compressed context (`v1` against `v2`): the architecture alone;
- `paper`: as the paper compared the whole systems, V1's routes each re-read the user's raw history (`v1-raw`: every
  interaction, title and category, bounded by the model's window) against V2's compressed context (`v2`, shared by
  both setups and run once), and with `--hybrid` V2's hybrid compression too (`v2-hybrid`).

For each pipeline, two phases on disjoint user sets (so that no phase reuses another's prefix cache):
`serial` runs users one at a time (latency, users/min at concurrency 1), `saturated` runs `saturation`
users at once (throughput, tokens, quality). Around each phase the server's Prometheus `/metrics` are
read, so prompt tokens *computed* (vLLM's local-compute prompt tokens, i.e. not prefix-cache hits) come
from the server itself, not from our accounting. Per user we also record the client's view: LLM calls,
prompt tokens sent, completion tokens, wall time, and the time at least one of the user's LLM calls was
in flight; wall time minus that is our orchestration overhead (context building, token counting,
retrieval, graph bookkeeping).
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field

from recgpt import plots
from recgpt.data import Dataset, Split
from recgpt.eval.harness import answer_with_graph, sample_users
from recgpt.eval.report import model_label, per_user_metrics, write_report_files
from recgpt.eval.runs import EvalConfig, UserResult, base_result, levels_of, progress_bar, recgpt_context
from recgpt.graph import build_graph
from recgpt.graph.v1 import build_v1_graph
from recgpt.schema.calls import LLMCall
from recgpt.services.endpoints import check_endpoint
from recgpt.services.resources import default_registry, endpoints_of, resolve

Pipeline = Literal["v1", "v1-raw", "v2", "v2-hybrid"]
Setup = Literal["architecture", "paper"]
PIPELINE_GRAPH: dict[str, str] = {"v1": "v1", "v1-raw": "v1", "v2": "v2", "v2-hybrid": "v2"}
PIPELINE_CONTEXT: dict[str, dict[str, str]] = {"v1-raw": {"v1_history": "raw"}, "v2-hybrid": {"compression": "hybrid"}}
"""What each pipeline changes in the run's Context (the others run it as it is)."""
SETUP_PAIRS: dict[str, tuple[str, str]] = {"architecture": ("v1", "v2"), "paper": ("v1-raw", "v2"), "paper-hybrid": ("v1-raw", "v2-hybrid")}
"""(baseline, candidate) of each comparison the report states goals for."""


def pipelines_for(setups: list[str], hybrid: bool = False) -> list[str]:
    """The pipelines the setups need, each once, in report order."""
    wanted = [p for setup in setups for p in SETUP_PAIRS[setup]] + (["v2-hybrid"] if hybrid and "paper" in setups else [])
    return [p for p in ("v1", "v1-raw", "v2", "v2-hybrid") if p in wanted]
SERVER_COUNTERS = {
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "prefix_cache_queries": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits": "vllm:prefix_cache_hits_total",
    "requests": "vllm:e2e_request_latency_seconds_count",
    "e2e_s": "vllm:e2e_request_latency_seconds_sum",
    "queue_s": "vllm:request_queue_time_seconds_sum",
    "prefill_s": "vllm:request_prefill_time_seconds_sum",
    "decode_s": "vllm:request_decode_time_seconds_sum",
}
SETUP_NOTES = {
    "architecture": "V1's three routes read V2's compressed context: the architectures alone, on the same input.",
    "paper": ("As the paper compared the whole systems: each V1 route re-reads the user's raw history (every interaction "
              "with its title and category, up to the model's window, oldest dropped first) behind its own role prompt; "
              "V2 reads one compressed context shared by all its agents."),
    "paper-hybrid": "The paper setup with V2's hybrid compression (one adaptor soft token per listed title).",
}
FIGURES = """\
- calls/user: LLM calls per user (client). sent/user: prompt tokens sent (client usage).
- computed/user: prompt tokens the server actually computed = prompt tokens - prefix-cache hits (server /metrics).
- cache hit: prefix-cache hits / prompt tokens (server). completion/user: generated tokens (server).
- wall/user: mean seconds from a user's start to its result. users/min: users finished per minute of phase wall time.
- server busy/user: seconds the engine had at least one request running (its `num_requests_running` gauge,
  sampled every 0.25 s) per user: accelerator time, without our gaps and without counting batched requests twice.
- server e2e/user: summed request latency on the server per user (queue + prefill + decode; parallel calls add up).
- LLM-busy/user: seconds at least one of the user's calls was in flight (client). overhead: wall - LLM-busy, ours.
- dup rate (V1): share of candidate tags another route had already proposed.
- quality: cat HR@K (L2, leaf) and item HR@K of the saturated phase's users, as `recgpt eval` computes them.
"""


class BenchConfig(BaseModel):
    dataset: str = "office"
    split: Literal["validation", "test"] = "test"
    users: int = Field(default=50, ge=1, description="Users of the saturated phase (quality is measured on them).")
    serial_users: int = Field(default=5, ge=0, description="Other users, run one at a time.")
    saturation: int = Field(default=16, ge=1, description="Users in flight in the saturated phase.")
    seed: int = 0
    k_tags: int = Field(default=10, ge=1)
    k_items: list[int] = Field(default_factory=lambda: [10, 30])
    pipelines: list[Pipeline] = Field(default_factory=lambda: ["v1", "v2"])
    setups: list[Setup] = Field(default_factory=lambda: ["architecture"], description="The comparisons reported.")
    date: str = "2026-11-25"


def scrape_metrics(base_url: str) -> dict[str, float]:
    """Sum of each counter over its label sets, from the server's Prometheus endpoint."""
    root = base_url.rstrip("/").removesuffix("/v1")
    text = httpx.get(root + "/metrics", timeout=10.0).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return {key: totals.get(name, 0.0) for key, name in SERVER_COUNTERS.items()}


def wait_until_idle(base_url: str, timeout_s: float = 300.0, interval: float = 0.5) -> bool:
    """Wait until the server runs and queues no request (its gauges), so a phase's counters hold only its own traffic
    (another client's leftover requests would be counted as ours); False if it was still busy after `timeout_s`."""
    root = base_url.rstrip("/").removesuffix("/v1")
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(root + "/metrics", timeout=10.0).text
        load = sum(float(sample.value) for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name in (RUNNING_GAUGE, "vllm:num_requests_waiting"))
        if load == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def busy_seconds(calls: list[LLMCall]) -> float:
    """Length of the union of the calls' [start, start + latency] intervals."""
    spans = sorted((c.started_at, c.started_at + c.latency_s) for c in calls if c.started_at > 0)
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


RUNNING_GAUGE = "vllm:num_requests_running"


class BusySampler:
    """Server busy time: the seconds during which the engine had at least one request running, from its
    `num_requests_running` gauge read every `interval` s. Unlike users/min it does not count our own gaps, and unlike
    summed request latencies it does not count batched requests twice: the closest figure to accelerator time."""

    def __init__(self, base_url: str, interval: float = 0.25) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
        self.interval = interval
        self.busy_s = 0.0

    def running(self) -> float:
        text = httpx.get(self.url, timeout=5.0).text
        return sum(float(s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == RUNNING_GAUGE)

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            try:
                running = await asyncio.to_thread(self.running)
            except (httpx.HTTPError, ValueError):
                running = 0.0
            now = time.perf_counter()
            if running > 0:
                self.busy_s += now - last
            last = now
            await asyncio.sleep(self.interval)


class UserRun(BaseModel):
    result: UserResult
    wall_s: float
    busy_s: float
    duplicate_rate: float | None = None
    tokens_by_role: dict[str, list[int]] = Field(default_factory=dict, description="role -> [prompt, completion] tokens.")


def agent_role(agent: str) -> str:
    """An agent's role without its index or route ('expert[2]' -> 'expert', 'v1[season]:mine' -> 'v1:mine')."""
    head, _, tail = agent.partition(":")
    return head.split("[", 1)[0] + (f":{tail}" if tail else "")


def tokens_by_role(calls: list[LLMCall]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for call in calls:
        entry = out.setdefault(agent_role(call.agent), [0, 0])
        entry[0] += call.prompt_tokens
        entry[1] += call.completion_tokens
    return out


async def run_phase(graph: Any, config: BenchConfig, dataset: Dataset, users: list[str], concurrency: int, label: str,
                    show_progress: bool, overrides: dict[str, Any] | None = None) -> dict[str, Any]:

    eval_config = EvalConfig(dataset=config.dataset, split=config.split, users=len(users), seed=config.seed, k_tags=config.k_tags,
                             k_items=config.k_items, date=config.date)
    ctx = dataclasses.replace(recgpt_context(eval_config), **(overrides or {}))
    index = default_registry().retriever(dataset)
    levels = levels_of(dataset)
    gate = asyncio.Semaphore(concurrency)

    async def one(user_id: str) -> UserRun:
        async with gate:
            started = time.perf_counter()
            result, history = base_result(dataset, user_id, config.split, levels)
            state = await answer_with_graph(graph, index, eval_config, dataset, ctx, user_id, history, result)
            wall = time.perf_counter() - started
            result.wall_s = wall
            return UserRun(result=result, wall_s=wall, busy_s=busy_seconds(state.get("calls", [])),
                           duplicate_rate=state.get("route_duplicate_rate"), tokens_by_role=tokens_by_role(state.get("calls", [])))

    idle = await asyncio.to_thread(wait_until_idle, ctx.base_url)
    before = await asyncio.to_thread(scrape_metrics, ctx.base_url)
    started = time.perf_counter()
    runs: list[UserRun] = []
    busy = BusySampler(ctx.base_url)
    sampler = asyncio.create_task(busy.run())
    try:
        with progress_bar(show_progress) as progress:
            task = progress.add_task(label, total=len(users))
            for finished in asyncio.as_completed([one(u) for u in users]):
                runs.append(await finished)
                progress.advance(task)
    finally:
        sampler.cancel()
    elapsed = time.perf_counter() - started
    after = await asyncio.to_thread(scrape_metrics, ctx.base_url)
    server = {k: after[k] - before[k] for k in SERVER_COUNTERS}
    server["busy_s"] = busy.busy_s
    phase = summarise_phase(runs, server, elapsed, eval_config, levels)
    phase["server_idle_at_start"] = idle
    return phase


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def summarise_phase(runs: list[UserRun], server: dict[str, float], elapsed: float, eval_config: EvalConfig,
                    levels: tuple[str, ...]) -> dict[str, Any]:

    n = max(1, len(runs))
    rows = [per_user_metrics(r.result, eval_config, levels) for r in runs]
    wall = sum(r.wall_s for r in runs)
    busy = sum(r.busy_s for r in runs)
    dups = [r.duplicate_rate for r in runs if r.duplicate_rate is not None]
    return {
        "users": len(runs), "elapsed_s": elapsed, "users_per_min": len(runs) / elapsed * 60 if elapsed else 0.0,
        "calls_per_user": _mean([r.result.llm_calls for r in runs]),
        "prompt_tokens_sent_per_user": _mean([r.result.prompt_tokens for r in runs]),
        "completion_tokens_client_per_user": _mean([r.result.completion_tokens for r in runs]),
        "prompt_tokens_server_per_user": server["prompt_tokens"] / n,
        "prompt_tokens_computed_per_user": (server["prompt_tokens"] - server["prefix_cache_hits"]) / n,
        "prefix_cache_hit_rate": server["prefix_cache_hits"] / server["prompt_tokens"] if server["prompt_tokens"] else 0.0,
        "completion_tokens_per_user": server["generation_tokens"] / n,
        "server_requests_per_user": server["requests"] / n,
        "server_e2e_s_per_user": server["e2e_s"] / n, "server_queue_s_per_user": server["queue_s"] / n,
        "server_prefill_s_per_user": server["prefill_s"] / n, "server_decode_s_per_user": server["decode_s"] / n,
        "server_busy_s_per_user": server.get("busy_s", 0.0) / n,
        "wall_s_per_user": wall / n, "llm_busy_s_per_user": busy / n,
        "overhead_s_per_user": (wall - busy) / n, "overhead_share": (wall - busy) / wall if wall else 0.0,
        "route_duplicate_rate": _mean(dups) if dups else None,
        # where the decode goes: mean prompt / completion tokens per user of each agent role (client usage)
        "tokens_per_user_by_role": {role: {"prompt": sum(r.tokens_by_role.get(role, [0, 0])[0] for r in runs) / n,
                                           "completion": sum(r.tokens_by_role.get(role, [0, 0])[1] for r in runs) / n}
                                    for role in sorted({role for r in runs for role in r.tokens_by_role})},
        "failed_users": sum(1 for r in runs if not r.result.tags), "flagged_users": sum(1 for r in runs if r.result.flags),
        "quality": {name: _mean([row[name] for row in rows]) for name in (rows[0] if rows else {})},
        # the client's view per user (the server's counters are per phase: computed tokens have no per-user split)
        "per_user": [{"user_id": r.result.user_id, "llm_calls": r.result.llm_calls, "prompt_tokens_sent": r.result.prompt_tokens,
                      "completion_tokens": r.result.completion_tokens, "wall_s": round(r.wall_s, 3),
                      "llm_busy_s": round(r.busy_s, 3), "overhead_s": round(r.wall_s - r.busy_s, 3), "tags": len(r.result.tags),
                      "flags": len(r.result.flags), "duplicate_rate": r.duplicate_rate, **row}
                     for r, row in zip(runs, rows)],
    }


async def run_bench(config: BenchConfig, show_progress: bool = True) -> dict[str, Any]:

    dataset = default_registry().dataset(config.dataset)
    Split(config.split)
    pool = sample_users(dataset, config.split, config.users + config.serial_users, config.seed)
    saturated, serial = pool[: config.users], pool[config.users:]
    ctx = recgpt_context(EvalConfig(dataset=config.dataset, k_tags=config.k_tags))
    check_endpoint(ctx)
    resources = resolve(dataset)  # one dataset and retriever for both architectures
    graphs = {"v1": build_v1_graph(resources), "v2": build_graph(resources)}
    if "v2-hybrid" in config.pipelines:
        endpoints_of(dataclasses.replace(ctx, compression="hybrid")).policy  # no adaptor or no --prompt-embeds: one line, before any user
    out: dict[str, Any] = {"config": config.model_dump(), "context": {k: v for k, v in vars(ctx).items() if k != "api_key"},
                           "pipelines": {}}
    for pipeline in config.pipelines:
        phases: dict[str, Any] = {}
        graph, overrides = graphs[PIPELINE_GRAPH[pipeline]], PIPELINE_CONTEXT.get(pipeline, {})
        if serial:
            phases["serial"] = await run_phase(graph, config, dataset, serial, 1, f"{pipeline} serial ({len(serial)} users)",
                                               show_progress, overrides)
        phases["saturated"] = await run_phase(graph, config, dataset, saturated, config.saturation,
                                              f"{pipeline} saturated ({len(saturated)} users, {config.saturation} in flight)",
                                              show_progress, overrides)
        out["pipelines"][pipeline] = phases
    out["comparisons"] = {name: ratios(out["pipelines"], *pair) for name, pair in SETUP_PAIRS.items()
                          if set(pair) <= set(out["pipelines"])}
    out["ratios"] = out["comparisons"].get("architecture") or next(iter(out["comparisons"].values()), {})
    return out


def ratios(pipelines: dict[str, Any], baseline: str = "v1", candidate: str = "v2") -> dict[str, Any]:
    """The goals of one comparison (keys say V2/V1: candidate over baseline)."""
    if not {baseline, candidate} <= set(pipelines):
        return {}
    v1, v2 = pipelines[baseline]["saturated"], pipelines[candidate]["saturated"]

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    computed = ratio(v2["prompt_tokens_computed_per_user"], v1["prompt_tokens_computed_per_user"])
    throughput = ratio(v2["users_per_min"], v1["users_per_min"])
    quality = {k: v2["quality"][k] - v1["quality"][k] for k in v2["quality"]}
    return {
        "v2_over_v1_prefill_computed": computed, "goal_prefill_at_most_0.40": computed is not None and computed <= 0.40,
        "v2_over_v1_users_per_min_saturated": throughput, "goal_throughput_at_least_2.5": throughput is not None and throughput >= 2.5,
        "v2_minus_v1_quality": quality, "goal_quality_not_worse": all(d >= 0 for k, d in quality.items() if k.startswith("cat_hr")),
        "v2_overhead_share_saturated": v2["overhead_share"], "goal_overhead_below_5pct": v2["overhead_share"] < 0.05,
        "v2_over_v1_users_per_min_serial": ratio(pipelines[candidate].get("serial", {}).get("users_per_min", 0.0),
                                                 pipelines[baseline].get("serial", {}).get("users_per_min", 0.0)),
        "v2_over_v1_server_busy_s": ratio(v2.get("server_busy_s_per_user", 0.0), v1.get("server_busy_s_per_user", 0.0)),
        "v2_over_v1_completion_tokens": ratio(v2["completion_tokens_per_user"], v1["completion_tokens_per_user"])
        if "completion_tokens_per_user" in v1 and "completion_tokens_per_user" in v2 else None,
        "baseline": baseline, "candidate": candidate,
    }


ROWS = (("calls/user", "calls_per_user", 2), ("sent/user", "prompt_tokens_sent_per_user", 0), ("computed/user", "prompt_tokens_computed_per_user", 0),
        ("cache hit", "prefix_cache_hit_rate", 3), ("completion/user", "completion_tokens_per_user", 0), ("wall/user s", "wall_s_per_user", 1),
        ("users/min", "users_per_min", 2), ("server busy/user s", "server_busy_s_per_user", 2),
        ("server prefill/user s", "server_prefill_s_per_user", 1), ("server decode/user s", "server_decode_s_per_user", 1),
        ("server e2e/user s", "server_e2e_s_per_user", 1), ("LLM-busy/user s", "llm_busy_s_per_user", 1),
        ("overhead/user s", "overhead_s_per_user", 2), ("overhead share", "overhead_share", 3), ("dup rate", "route_duplicate_rate", 3),
        ("failed / flagged users", None, 0))


def fmt(v: float | None) -> str:
    """A ratio to two decimals, or a dash where it was not measured."""
    return "—" if v is None else f"{v:.2f}"


def goal_verdict(value: float | None, goal: float, at_most: bool) -> str:
    """'met', or 'not met by X' (how far the value is from the goal)."""
    if value is None:
        return "not measured"
    if (value <= goal) if at_most else (value >= goal):
        return "met"
    return f"not met by {abs(value - goal):.2f}"


def limit_note(v1: dict[str, Any], v2: dict[str, Any], base: str, cand: str) -> str:
    """What bounds the users/min ratio: the engine's time per user splits into prefill and decode (vLLM's own
    request timers), so the ratio follows prefill only as far as the candidate's time is prefill."""
    def split(phase: dict[str, Any]) -> tuple[float, float]:
        prefill, decode = phase.get("server_prefill_s_per_user", 0.0), phase.get("server_decode_s_per_user", 0.0)
        total = prefill + decode
        return (prefill / total, decode / total) if total else (0.0, 0.0)

    (p1, d1), (p2, d2) = split(v1), split(v2)
    completion = (f"{cand} generates {v2.get('completion_tokens_per_user', 0):.0f} completion tokens per user, "
                  f"{base} {v1.get('completion_tokens_per_user', 0):.0f}")
    return (f"what limits users/min: vLLM's per-request timers put {p1:.0%} of request time in prefill and {d1:.0%} in "
            f"decode for {base}, {p2:.0%} / {d2:.0%} for {cand} (batched, a request in decode also waits while other "
            f"requests' prefill chunks run, so decode's share is an upper bound); {completion}. A prefill cut moves "
            "users/min only as far as the time it saves is prefill; the rest follows the decode steps each user needs.")


def markdown(result: dict[str, Any], model: str) -> str:
    cfg = result["config"]
    columns = [(p, phase) for p, phases in result["pipelines"].items() for phase in phases]
    lines = [f"# Benchmark: RecGPT-V1 multi-route vs V2, {Path(cfg['dataset']).name} {cfg['split']}", "",
             f"> Model: **{model_label(model)}**", "",
             f"Same server (`{model}`), same users (seed {cfg['seed']}): saturated phase {cfg['users']} users with "
             f"{cfg['saturation']} in flight; serial phase {cfg['serial_users']} other users one at a time. K={cfg['k_tags']}.", "",
             "| figure | " + " | ".join(f"{p} {phase}" for p, phase in columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, key, digits in ROWS:
        cells = []
        for p, phase in columns:
            r = result["pipelines"][p][phase]
            if key is None:
                cells.append(f"{r['failed_users']} / {r['flagged_users']}")
            else:
                v = r.get(key)
                cells.append("—" if v is None else f"{v:.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    roles = sorted({role for phases in result["pipelines"].values() for role in phases["saturated"].get("tokens_per_user_by_role", {})})
    if roles:
        lines += ["", "## Tokens per user by agent role (saturated phase, prompt / completion)", "",
                  "| role | " + " | ".join(result["pipelines"]) + " |", "|---|" + "---:|" * len(result["pipelines"])]
        for role in roles:
            cells = []
            for phases in result["pipelines"].values():
                t = phases["saturated"].get("tokens_per_user_by_role", {}).get(role)
                cells.append(f"{t['prompt']:.0f} / {t['completion']:.0f}" if t else "—")
            lines.append(f"| {role} | " + " | ".join(cells) + " |")
    quality_names = list(next(iter(result["pipelines"].values()))["saturated"]["quality"])
    lines += ["", "## Quality (saturated phase users)", "", "| pipeline | " + " | ".join(quality_names) + " |",
              "|---|" + "---:|" * len(quality_names)]
    for p, phases in result["pipelines"].items():
        lines.append(f"| {p} | " + " | ".join(f"{phases['saturated']['quality'][q]:.3f}" for q in quality_names) + " |")
    comparisons = result.get("comparisons") or ({"architecture": result["ratios"]} if result.get("ratios") else {})
    for name, r in comparisons.items():
        if not r:
            continue

        base, cand = r.get("baseline", "v1"), r.get("candidate", "v2")
        lines += ["", f"## Goals, {name} setup ({cand} against {base}, saturated phase)", "", SETUP_NOTES.get(name, ""), "",
                  f"- prefill computed per user {cand}/{base} = **{fmt(r['v2_over_v1_prefill_computed'])}** "
                  f"(goal ≤ 0.40: {goal_verdict(r['v2_over_v1_prefill_computed'], 0.40, at_most=True)})",
                  f"- users/min {cand}/{base} = **{fmt(r['v2_over_v1_users_per_min_saturated'])}** at saturation (goal ≥ 2.5: "
                  f"{goal_verdict(r['v2_over_v1_users_per_min_saturated'], 2.5, at_most=False)}); "
                  f"{fmt(r['v2_over_v1_users_per_min_serial'])} serially",
                  "- " + limit_note(result["pipelines"][base]["saturated"], result["pipelines"][cand]["saturated"], base, cand),
                  f"- server busy seconds per user {cand}/{base} = {fmt(r.get('v2_over_v1_server_busy_s'))}; completion tokens per user "
                  f"{cand}/{base} = {fmt(r.get('v2_over_v1_completion_tokens'))}",
                  f"- quality {cand} − {base}: " + ", ".join(f"{k} {v:+.3f}" for k, v in r["v2_minus_v1_quality"].items())
                  + f" (goal: not worse on cat HR: {'met' if r['goal_quality_not_worse'] else 'not met'})",
                  f"- {cand} orchestration overhead {r['v2_overhead_share_saturated']:.1%} of wall time (goal < 5%: "
                  f"{'met' if r['goal_overhead_below_5pct'] else 'not met'})"]
    lines += hybrid_against_text(result["pipelines"])
    setups = ",".join(cfg.get("setups") or ["architecture"])
    hybrid = " --hybrid" if "v2-hybrid" in result["pipelines"] else ""
    lines += ["", "## Figures", "", FIGURES, "## Reproduce", "",
              f"    recgpt bench --dataset {cfg['dataset']} --split {cfg['split']} --setup {setups}{hybrid} --users {cfg['users']} "
              f"--serial-users {cfg['serial_users']} --saturation {cfg['saturation']} --tags {cfg['k_tags']}", ""]
    return "\n".join(lines)


def hybrid_against_text(pipelines: dict[str, Any]) -> list[str]:
    """V2 with hybrid compression against V2 with text, on the same server and run (issue 35: users/min not below
    text's). Quality here is the full graph on the saturated phase's users; the paired fidelity of the policy alone
    is `recgpt stats hybrid`'s report."""
    r = ratios(pipelines, "v2", "v2-hybrid")
    if not r:
        return []
    sat = r["v2_over_v1_users_per_min_saturated"]
    return ["", "## V2-hybrid against V2-text (same server and run)", "",
            f"- users/min v2-hybrid/v2 = **{fmt(sat)}** at saturation (goal ≥ 1.00: {goal_verdict(sat, 1.0, at_most=False)}); "
            f"{fmt(r['v2_over_v1_users_per_min_serial'])} serially",
            f"- prefill computed per user v2-hybrid/v2 = {fmt(r['v2_over_v1_prefill_computed'])}; server busy seconds per user "
            f"{fmt(r['v2_over_v1_server_busy_s'])}",
            "- quality v2-hybrid − v2 (full graph, same users): " + ", ".join(f"{k} {v:+.3f}" for k, v in r["v2_minus_v1_quality"].items())]


def _grouped_bars(ax: Any, pipelines: list[str], groups: list[str], value: Any, title: str) -> None:
    """One bar per pipeline in each group (`value(pipeline, group)`), groups side by side."""
    width = 0.8 / max(1, len(pipelines))
    for i, p in enumerate(pipelines):
        ax.bar([x + i * width for x in range(len(groups))], [value(p, g) for g in groups], width, label=p.upper())
    ax.set_xticks([x + width * (len(pipelines) - 1) / 2 for x in range(len(groups))], groups)
    ax.set_title(title)
    ax.legend()


def plot(result: dict[str, Any], path: Path) -> Path | None:
    pipelines = list(result["pipelines"])
    phases = ["serial", "saturated"]
    keys = [("sent", "prompt_tokens_sent_per_user"), ("computed", "prompt_tokens_computed_per_user"), ("completion", "completion_tokens_per_user")]
    with plots.figure(path, 1, 3, size=(16, 4.2)) as (_, (left, right, busy)):
        _grouped_bars(left, pipelines, phases, lambda p, ph: result["pipelines"][p].get(ph, {}).get("users_per_min", 0.0),
                      "users per minute")
        _grouped_bars(right, pipelines, [n for n, _ in keys],
                      lambda p, name: result["pipelines"][p]["saturated"][dict(keys)[name]], "tokens per user (saturated phase)")
        _grouped_bars(busy, pipelines, phases,
                      lambda p, ph: result["pipelines"][p].get(ph, {}).get("server_busy_s_per_user", 0.0), "server busy seconds per user")
    return path


def write_bench_report(result: dict[str, Any], out_dir: Path, model: str) -> tuple[Path, Path, Path | None]:
    stem = out_dir / f"bench-{Path(result['config']['dataset']).name}-{result['config']['split']}"
    return write_report_files(stem, result, model, markdown, plot)
