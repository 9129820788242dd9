"""`recgpt stats context|hybrid`: context-size and hybrid-compression measurements written to reports/."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from recgpt.cli.common import console, default_model_folder
from recgpt.cli.options import REPORTS
from recgpt.errors import RecGPTError
from recgpt.eval.context_stats import measure, write_report
from recgpt.eval.report import write_report_files
from recgpt.schema.context import Context
from recgpt.services.endpoints import check_endpoint, served_model_identity
from recgpt.services.resources import default_registry, endpoints_of
from recgpt.tools.context.tokens import LocalTokenCounter

app = typer.Typer()
stats_app = typer.Typer(help="Measurements written to reports/.", no_args_is_help=True)
app.add_typer(stats_app, name="stats")


@stats_app.command("context")
def stats_context(
    dataset: str = typer.Option("office", help="Dataset to measure."),
    users: int = typer.Option(100, min=1, help="Users sampled from the split."),
    seed: int = typer.Option(0, min=0, help="Sampling seed."),
    split: str = typer.Option("test", help="validation or test: the history before the held-out target."),
    date: str = typer.Option("2026-11-25", help="Environment date (fixed so the report is reproducible)."),
    out: Path = REPORTS,
) -> None:
    """Compressed-context vs raw-history tokens (median, p90) with the default model's tokenizer."""
    counter = LocalTokenCounter(default_model_folder())
    result = measure(dataset, users, seed, split, counter, dt.date.fromisoformat(date))
    md_path, json_path = write_report(result, out)
    r, c = result["raw"], result["compressed"]
    console.print(f"raw median {r['median']:.0f} / p90 {r['p90']:.0f} tokens; compressed median {c['median']:.0f} / "
                  f"p90 {c['p90']:.0f}; report {md_path} and {json_path}")


@stats_app.command("hybrid")
def stats_hybrid(
    dataset: str = typer.Option("office", help="Dataset to measure."),
    users: int = typer.Option(200, min=1, help="Test users sampled (seed 0 = the eval sample) for the token counts."),
    prefill_users: int = typer.Option(20, min=0, help="Users whose expert prompt is timed once as text and once as embeddings (0 = skip)."),
    seed: int = typer.Option(0, min=0, help="Sampling seed."),
    split: str = typer.Option("test", help="validation or test."),
    max_items: int = typer.Option(40, min=1, help="Distinct history items listed by title (the Context default)."),
    date: str = typer.Option("2026-11-25", help="Environment date for datasets without timestamps (as `recgpt eval`)."),
    adaptor: Optional[Path] = typer.Option(None, help="Adaptor folder (default: the one trained for the served model)."),
    category_text: bool = typer.Option(True, help="Hybrid history keeps category paths as text (Context.hybrid_category_text; an adaptor that records its layout uses that one)."),
    text_eval: Optional[Path] = typer.Option(None, help="`recgpt eval --method expert` report JSON in text mode (fidelity)."),
    hybrid_eval: Optional[Path] = typer.Option(None, help="The same eval with --compression hybrid (fidelity)."),
    out: Path = REPORTS,
) -> None:
    """Hybrid vs text context: tokens per user (median, p90), prefill time per request on the server, held-out
    self-perception accuracy and tag/item fidelity; writes reports/hybrid-<dataset>.md/.json/.png.
    Needs a server started with `recgpt serve --prompt-embeds` and a trained adaptor."""
    from recgpt.eval import hybrid_report  # deferred: transformers and torch (the entity adaptor)
    from recgpt.eval.harness import sample_users  # deferred: torch (the harness imports the SASRec baseline)
    from recgpt.tools.context import hybrid  # deferred: transformers and torch (the entity adaptor)

    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    for path in (text_eval, hybrid_eval):
        if path is not None and not path.is_file():
            raise RecGPTError(f"{path}: no such eval report")
    ctx = Context()
    check_endpoint(ctx)
    endpoint = endpoints_of(ctx).policy
    assembler = hybrid.load_assembler(endpoint.base_url, endpoint.model, adaptor, endpoint.api_key)
    category_text = assembler.layout(category_text)  # an adaptor is measured in the layout it was trained for
    sampled = sample_users(default_registry().dataset(dataset), split, users, seed)
    # the hybrid layout's other choices are the hybrid eval's (its recorded Context), so tokens and fidelity agree
    layout = json.loads(hybrid_eval.read_text()).get("context", {}) if hybrid_eval else {}
    anchors = int(layout.get("hybrid_anchor_titles", ctx.hybrid_anchor_titles))
    category_counts = bool(layout.get("hybrid_category_counts", ctx.hybrid_category_counts))
    with console.status(f"rendering {len(sampled)} users' prompts"):
        rows = hybrid_report.user_prompts(dataset, split, sampled, max_items, date, category_text, anchors, category_counts)
    result: dict = {"config": {"dataset": dataset, "split": split, "users": len(sampled), "seed": seed, "max_items": max_items,
                               "prefill_users": prefill_users, "date": date, "category_text": category_text,
                               "anchor_titles": anchors, "category_counts": category_counts},
                    "command": "recgpt stats hybrid " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "recgpt stats hybrid",
                    "tokens": hybrid_report.token_stats(rows, assembler),
                    "adaptor": {"folder": str(assembler.adaptor_dir),
                                "fingerprint": assembler.adaptor_fingerprint, "trained_on": assembler.adaptor.config.trained_on}}
    if prefill_users:
        with console.status(f"timing prefill for {prefill_users} users (text, then embeddings)"):
            result["prefill"] = hybrid_report.prefill_timing(rows[:prefill_users], assembler, endpoint.base_url, endpoint.model)
    run = assembler.adaptor.config.trained_on.get("run")
    if run and (Path(str(run)) / "metrics.json").is_file():
        result["self_perception"] = json.loads((Path(str(run)) / "metrics.json").read_text())["self_perception_heldout"]
    if text_eval and hybrid_eval:
        result["fidelity"] = hybrid_report.fidelity(json.loads(text_eval.read_text()), json.loads(hybrid_eval.read_text()))
    md, _, png = write_report_files(out / f"hybrid-{Path(dataset).name}", result,
                                    served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key),
                                    hybrid_report.markdown, hybrid_report.plot)
    t = result["tokens"]
    console.print(f"text prefix median {t['text_prefix_tokens']['median']:.0f} -> hybrid {t['hybrid_prefix_tokens']['median']:.0f} "
                  f"tokens (ratio median {t['hybrid_over_text']['median']:.2f}); report {md}")
