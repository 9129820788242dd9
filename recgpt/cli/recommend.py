"""`recgpt recommend` and `recgpt demo`: recommendations for real users, on the console or as JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from pathlib import Path
from typing import Optional

import typer

from recgpt.cli.common import console, err_console, served_weights
from recgpt.cli.options import CONTEXT_KNOBS, Opt, options_from
from recgpt.cli.served import warn_policy_domain
from recgpt.data import Split
from recgpt.errors import RecGPTError
from recgpt.graph import build_graph
from recgpt.graph.plugins import configured_plugins
from recgpt.render import render_result, result_json, usage_totals
from recgpt.runner import arecommend, arecommend_durable, arecommend_many
from recgpt.schema.context import Context
from recgpt.services.endpoints import check_endpoint
from recgpt.services.resources import default_registry, resolve
from recgpt.settings import get_settings
from recgpt.tools.serving.server import ServerConfig, is_healthy, start_server

app = typer.Typer()


@app.command()
@options_from(Context, into="ctx", only=[*CONTEXT_KNOBS, "compression", "adaptor_dir"], **CONTEXT_KNOBS,
              adaptor_dir=Opt(name="adaptor", default=None))
def recommend(
    *,
    user: str = typer.Option(..., "--user", help="User id in the dataset."),
    dataset: str = typer.Option("office", help="office, movielens, or a folder with items.jsonl + histories.jsonl."),
    split: str = typer.Option("full", help="full (whole history), validation or test (targets held out)."),
    date: Optional[str] = typer.Option(None, help="Recommendation date YYYY-MM-DD (default: today, or the day after the last event)."),
    weather: Optional[str] = typer.Option(None, help="Weather to put in the situation, e.g. 'cold and rainy'."),
    trend: Optional[str] = typer.Option(None, help="A trend to put in the situation."),
    ctx: Context,
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    plugin: list[str] = typer.Option([], "--plugin", help=(
        "Plug-in agent nodes, `pkg.module:obj` (repeatable; added to RECGPT_PLUGINS and installed `recgpt.agents` "
        "entry points), e.g. examples.shop_plugins:plugins.")),
    thread: Optional[str] = typer.Option(None, help=(
        "Durable run: checkpoint every step under this thread id (SQLite). Rerunning with the same id resumes a "
        "killed run without redoing finished agent calls, or shows a finished run as it was.")),
    checkpoints: Optional[Path] = typer.Option(None, help="SQLite file of --thread runs (default: RECGPT_HOME/checkpoints.sqlite)."),
    rationales: bool = typer.Option(False, help=(
        "Ask each expert for a short rationale per tag and each persona for evidence words (off by default: a decode "
        "cut that saves ~45% of V2's generated tokens; the item explanations carry the why).")),
) -> None:
    """Personas, tags with rationales, retrieved items, their explanations and (optionally) the judge's verdicts for one user."""
    if split not in {s.value for s in Split}:
        raise RecGPTError(f"--split must be one of full, validation, test (got {split!r})")
    if rationales:
        ctx = dataclasses.replace(ctx, expert_rationale_chars=60, planner_evidence=True)
    plugins = configured_plugins([*get_settings().plugins, *plugin])  # a bad plug-in -> one line, before any LLM call
    check_endpoint(ctx)
    registry = default_registry()
    registry.dataset(dataset).user(user)  # unknown user -> one clear line before any LLM call
    warn_policy_domain(ctx, dataset)

    resources = resolve(dataset, show_progress=not as_json)  # the index: once, with progress bars
    registry.prepare(resources.dataset, split, show_progress=not as_json)  # and the split's collaborative model, if any
    started = time.perf_counter()
    situation = dict(date=date, weather=weather, trend=trend)
    with console.status(f"running the agent graph for user {user}" + (f" on thread {thread}" if thread else "")):
        if thread:
            state, status = asyncio.run(arecommend_durable(user, thread, resources, split, ctx, checkpoints, plugins, **situation))
            err_console.print(f"thread {thread}: {status} ({checkpoints or 'RECGPT_HOME/checkpoints.sqlite'})")
        else:
            state = asyncio.run(arecommend(user, dataset, split, ctx, graph=build_graph(resources, plugins=plugins), **situation))
    if as_json:
        print(result_json(state))
    else:
        render_result(console, state, time.perf_counter() - started)


@app.command()
def demo(
    users: int = typer.Option(3, min=1, help="How many real users to show."),
    dataset: str = typer.Option("office", help="Dataset of the demo."),
    seed: int = typer.Option(7, min=0, help="Seed of the user sample."),
    keep_server: bool = typer.Option(False, help="Leave a server that the demo started running."),
    model: Optional[str] = typer.Option(None, help="Registry name or model folder the demo serves when it starts a server (default: the default policy model)."),
    policy: str = typer.Option("trained", help=(
        "For a registry model: trained (the policy shipped for --dataset merged, serving every agent; for a dataset "
        "with none, what a policy-alone check chose), "
        "expert (the base serves every agent, the shipped adapter only the experts, as a vLLM LoRA module) or base.")),
) -> None:
    """Prepare model, data, index and server as needed, then show recommendations for real users."""
    settings = get_settings()
    wall = time.perf_counter()
    ctx = Context()
    handle = None
    if not is_healthy(ctx.base_url):
        port = int(ctx.base_url.rsplit(":", 1)[-1].split("/")[0])
        folder, lora, rank = served_weights(model, policy, dataset, port)
        config = ServerConfig(model_dir=folder, port=port, lora_modules=lora, max_lora_rank=rank)
        with console.status(f"starting vLLM with {config.model_dir.name} on {config.base_url}"):
            handle = start_server(config, settings.run_dir)
        console.print(f"vLLM up at {config.base_url}")
    try:
        with console.status(f"loading dataset {dataset}"):
            data = default_registry().dataset(dataset)
        # warm the configured backend before the first user, with progress bars: Chroma builds its index once, the
        # collaborative retriever also trains its serving (full-split) model once
        resources = resolve(dataset, show_progress=True)
        default_registry().prepare(data, "full")
        rng = random.Random(seed)
        chosen = rng.sample(sorted(data.split_users("full"), key=lambda u: (len(u), u)), users)
        console.print(f"dataset {dataset}: {len(data.users)} users, {len(data.items)} items; showing users {', '.join(chosen)}")
        started = time.perf_counter()
        with console.status(f"{len(chosen)} users in parallel: planner → experts → arbiter → retrieval"):
            states = asyncio.run(arecommend_many(chosen, dataset, "full", ctx, concurrency=len(chosen), graph=build_graph(resources)))
        elapsed = time.perf_counter() - started
        for state in states:
            render_result(console, state)
        totals = [usage_totals(s) for s in states]
        console.print(
            f"[dim]{len(states)} users in {elapsed:.1f} s ({elapsed / len(states):.1f} s/user at concurrency {len(states)}); "
            f"per user {sum(t['prompt_tokens'] for t in totals) / len(totals):.0f} prompt + "
            f"{sum(t['completion_tokens'] for t in totals) / len(totals):.0f} completion tokens[/]"
        )
    finally:
        if handle is not None and not keep_server:
            handle.stop()
            console.print("stopped the vLLM server the demo started")
    console.print(f"demo finished in {time.perf_counter() - wall:.1f} s")
