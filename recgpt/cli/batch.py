"""`recgpt batch`: intents, items and (optionally) explanations for many users on Ray, resumable per user."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recgpt.cli.common import console
from recgpt.cli.options import REPORTS, parse_pairs, parse_value
from recgpt.cli.served import policy_identity
from recgpt.errors import RecGPTError
from recgpt.eval.report import model_label
from recgpt.scale.driver import BatchConfig, load_users, run_batch
from recgpt.scale.output import FORMATS
from recgpt.scale.report import run_scaling, write_batch_report
from recgpt.schema.context import Context
from recgpt.settings import get_settings

app = typer.Typer()


@app.command("batch")
def batch_command(
    out: Path = typer.Option(..., help="Output folder of the shards; rerun with the same --out to resume."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("full", help="full (serving: the whole history), validation or test."),
    users: Optional[int] = typer.Option(None, min=1, help="Users sampled from the split (seed 0); default: all."),
    user_file: Optional[Path] = typer.Option(None, help="A file of user ids, one per line (instead of --users)."),
    endpoint: list[str] = typer.Option([], help="An OpenAI-compatible endpoint; repeat for many (default: RECGPT_BASE_URL)."),
    per_endpoint: int = typer.Option(8, min=1, help="Users in flight per endpoint."),
    workers: int = typer.Option(2, min=1, help="Ray workers (actors), each with the compiled graph and the retriever."),
    per_worker: int = typer.Option(8, min=1, help="Users in flight per worker."),
    ray_address: Optional[str] = typer.Option(None, help="An existing Ray cluster (default: a local one, started and stopped here)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (streamed, record by record) or parquet (shards of --shard-size)."),
    shard_size: int = typer.Option(1000, min=1, help="Users per shard."),
    explanations: str = typer.Option("off", help="off, template or meta (the explanation stage; off is fastest)."),
    set_: list[str] = typer.Option([], "--set", help="Context override FIELD=VALUE (repeatable), e.g. --set num_personas=2."),
) -> None:
    """Run the graph for many users on Ray against one or many endpoints; every user is written once, in shards."""
    if fmt not in FORMATS:
        raise RecGPTError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if explanations not in ("off", "template", "meta"):
        raise RecGPTError(f"--explanations must be off, template or meta (got {explanations!r})")
    if users is not None and user_file is not None:
        raise RecGPTError("give --users or --user-file, not both")
    overrides = parse_pairs([f"explanation_mode={explanations}", *set_], Context)  # a bad one: one line, before Ray starts
    chosen = load_users(dataset, split, users, user_file)
    endpoints = endpoint or [get_settings().base_url]
    config = BatchConfig(dataset=dataset, split=split, users=chosen, out=out, format=fmt, shard_size=shard_size,
                         endpoints=endpoints, per_endpoint=per_endpoint, workers=workers, per_worker=per_worker,
                         ray_address=ray_address, context=overrides)
    with Progress(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[load]}"), console=console) as progress:
        task = progress.add_task("users", total=len(chosen), rate="", load="")

        def show(stats) -> None:  # type: ignore[no-untyped-def]
            load = " ".join(f"{url.split('//')[-1]}:{int(s['in_flight'])}/{int(s['done'])}"
                            + ("" if s["up"] else " DOWN") for url, s in stats.endpoints.items())
            progress.update(task, completed=stats.done + stats.skipped, rate=f"{stats.users_per_min():.1f} users/min", load=load)

        stats = run_batch(config, on_progress=show)
    console.print(f"{stats.done} users written to {out} ({stats.skipped} already there, {stats.failed} failed), "
                  f"{stats.endpoint_retries} endpoint retries, {stats.requeued_after_worker_death} users requeued after a worker died; per endpoint "
                  + ", ".join(f"{u}: {int(s['done'])} done, {int(s['failures'])} failures" for u, s in stats.endpoints.items()))


@app.command("batch-report")
def batch_report_command(
    users: int = typer.Option(40, min=1, help="Users per worker count: each count runs its own disjoint sample (seed 0), so none reads another's prefix cache."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("full", help="full, validation or test."),
    workers: str = typer.Option("1,2", help="Worker counts to compare, comma-separated."),
    endpoint: list[str] = typer.Option([], help="An OpenAI-compatible endpoint; repeat for many (default: RECGPT_BASE_URL)."),
    in_flight: int = typer.Option(8, min=1, help="Users in flight in all, split evenly across workers and endpoints."),
    explanations: str = typer.Option("off", help="off, template or meta."),
    set_: list[str] = typer.Option([], "--set", help="Context override FIELD=VALUE (repeatable)."),
    scratch: Path = typer.Option(Path("/tmp/recgpt-batch-report"), help="Where each run's shards go (emptied per run)."),
    out: Path = REPORTS,
) -> None:
    """Users/min of `recgpt batch` with 1, 2, ... Ray workers, per-endpoint load and failures: a report under reports/."""
    counts = parse_value(workers, list[int], "--workers")
    if min(counts) < 1:
        raise RecGPTError(f"--workers must list positive integers (got {workers!r})")
    if explanations not in ("off", "template", "meta"):
        raise RecGPTError(f"--explanations must be off, template or meta (got {explanations!r})")
    overrides = parse_pairs([f"explanation_mode={explanations}", *set_], Context)
    endpoints = endpoint or [get_settings().base_url]
    model = model_label(policy_identity(Context(**{**overrides, "base_url": endpoints[0]})))
    # disjoint users per worker count: no row may read the prefix cache another row warmed with the same prompts
    chosen = load_users(dataset, split, users * len(counts), None)
    samples = [chosen[i * users:(i + 1) * users] for i in range(len(counts))]
    if any(len(sample) < users for sample in samples):
        raise RecGPTError(f"the split has {len(chosen)} users, fewer than --users {users} x {len(counts)} worker counts")
    result = run_scaling(samples, counts, endpoints, scratch, dataset, split, in_flight, overrides,
                         on_progress=lambda s: console.print(f"  {s.done}/{users} users, {s.users_per_min():.2f}/min", end="\r"))
    command = "recgpt " + shlex.join(sys.argv[1:])
    md, _, png = write_batch_report(result, out / f"batch-{Path(dataset).name}", model, command)
    console.print(f"report: {md}" + (f", {png}" if png else ""))
