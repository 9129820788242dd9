"""`recgpt eval`: one method over sampled users, resumably; its report and the side-by-side comparison.

Its options are `EvalConfig`'s fields (`recgpt.eval.runs`); the other measurements are in `recgpt.cli.measure`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from recgpt.cli.common import console
from recgpt.cli.options import DATASET, REPORTS, Opt, options_from, parse_pairs
from recgpt.cli.served import policy_identity, warn_policy_domain
from recgpt.errors import RecGPTError
from recgpt.eval.blend import quota_label, tuned_quota
from recgpt.eval.report import report_slug, summarise, write_comparison, write_method_report
from recgpt.eval.runs import EvalConfig, levels_of, recgpt_context
from recgpt.schema.context import Context
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings

app = typer.Typer()
LLM_RUNS = ("recgpt", "expert", "blend", "fusion")
COMBINED = ("blend", "fusion")


@app.command("eval")
@options_from(
    EvalConfig, exclude=("context", "quota"), dataset=DATASET, k_tags=Opt(name="tags"),
    method=Opt(help=(
        "recgpt (the full graph), expert (the policy alone: one expert call with the training persona), popularity, "
        "category, itemknn, sasrec, sasrec_categories (SASRec's likeliest categories as grounded tags), blend (SASRec "
        "and recgpt merged under --quota; runs or resumes both) or fusion (their weighted reciprocal-rank fusion); "
        "oracle_leaf / oracle_l2 are retrieval ceilings.")),
    split=Opt(help="validation (tuning) or test (reports)."),
    users=Opt(help="Users sampled from the split (the same for every method at a seed)."),
    seed=Opt(help="Seed of the user sample (and of SASRec)."),
    concurrency=Opt(help="Users in flight at once against the LLM server (recgpt)."))
def eval_command(
    *,
    config: EvalConfig,
    out: Path = REPORTS,
    compression: str = typer.Option("text", help="recgpt/expert: text, or hybrid (entity soft tokens; server with --prompt-embeds)."),
    adaptor: Optional[Path] = typer.Option(None, help="Entity adaptor folder for --compression hybrid (default: the served model's)."),
    set_: list[str] = typer.Option([], "--set", help=(
        "recgpt/expert: override a runtime Context field, FIELD=VALUE (repeatable), e.g. --set expert_temperature=0.3. "
        "Tune on --split validation; the override is part of the results key and the report.")),
    quota: str = typer.Option("auto", help=(
        "blend / fusion: the LLM channel's share (of the K slots / of the rank-fusion weight), in [0, 1]; auto = "
        "tuned on validation (grid 0..1 by item HR@10), read back from the validation report of the same row name "
        "in --out when the split is test.")),
    name: str = typer.Option("", help=(
        "The row's name in the reports (default: the method), e.g. recgpt+evidence for a run under --set overrides; "
        "it must start with the method.")),
) -> None:
    """Run one method over sampled users, resumably; write its report and the side-by-side comparison."""
    if compression not in ("text", "hybrid"):
        raise RecGPTError(f"--compression must be text or hybrid (got {compression!r})")
    context: dict = {}
    if compression == "hybrid":  # text stays out of the context overrides: earlier results keep their keys
        context = {"compression": "hybrid", "adaptor_dir": str(adaptor or "")}
    context.update(parse_pairs(set_, Context))
    row = name.strip() or config.method
    if row.split("+", 1)[0] != config.method or not all(ch.isalnum() or ch in "+_-." for ch in row):
        raise RecGPTError(f"--name must be the method, or the method followed by +variant (letters, digits, _-.): got {row!r}")
    fixed = _quota(quota) if config.method in COMBINED else None
    if config.method in COMBINED and fixed is None and config.split == "test":
        fixed = tuned_quota(out, report_slug(config.dataset), row)
    config = config.model_copy(update={"context": context, "quota": fixed})
    from recgpt.eval.harness import run_blend, run_eval  # deferred: torch (the SASRec baseline), after the checks above

    if config.method in LLM_RUNS:
        warn_policy_domain(recgpt_context(config), config.dataset)
    blend_info: dict = {}
    if config.method in COMBINED:
        results, store, blend_info = run_blend(config, get_settings().home)
        if quota != "auto":
            row = quota_label(blend_info["quota"], row)
        if quota == "auto" and config.split == "test":
            blend_info["quota_source"] = f"tuned on validation ({out / f'eval-{report_slug(config.dataset)}-validation-{row}.json'})"
    else:
        config, results, store = run_eval(config, get_settings().home)
    data = default_registry().dataset(config.dataset)
    summary = summarise(config, results, levels_of(data))
    provenance: dict = {"dataset_hash": data.content_hash()}
    if blend_info:
        provenance["blend"] = blend_info
    if config.method in LLM_RUNS:
        ctx = recgpt_context(config)
        provenance["model"] = policy_identity(ctx)
        provenance["context"] = {key: value for key, value in asdict(ctx).items() if key != "api_key"}
    write_method_report(config, summary, store, out, provenance, row)
    md_path, _, png = write_comparison(config, out)
    metrics = ", ".join(f"{metric} {value:.3f}" for metric, value in summary["metrics"].items())
    if blend_info:
        console.print(f"{config.method} LLM share {blend_info['quota']:.2f} ({blend_info['quota_source']})")
    console.print(f"{row}: {summary['users_scored']} users scored ({summary['users_failed']} failed): {metrics}")
    console.print(f"report {md_path}" + (f", plot {png}" if png else "") + f"; per-user results {store}")


def _quota(text: str) -> float | None:
    """`--quota`: None for auto, else a share in [0, 1]."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise RecGPTError(f"--quota must be auto or a number in [0, 1] (got {text!r})") from None
    if not 0.0 <= value <= 1.0:
        raise RecGPTError(f"--quota must be within [0, 1] (got {value})")
    return value
