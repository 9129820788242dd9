"""`recgpt train stage-report`: one training stage against its starting policy, on validation: the stage's loss
curve and, per method, the metrics of both policies on the same users with the paired difference and its standard
error (all users and the new-interest slice). It is how a stage is judged before it may ship as the default.

It reads what the commands wrote: the run's `metrics.json`/`run_config.json` and two `recgpt eval --out DIR` folders,
one per served policy (`eval-<dataset>-<split>-<method>.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recgpt import plots
from recgpt.eval.metrics import paired_difference
from recgpt.eval.report import model_label, write_report_files
from recgpt.training.chain_report import curve

METRICS = ("cat_hr@10_l2", "cat_hr@10_leaf", "item_hr@10", "item_hr@30", "item_hr@50")


def _eval(folder: Path, dataset: str, split: str, method: str) -> dict[str, Any]:
    path = folder / f"eval-{dataset}-{split}-{method}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `recgpt eval --method {method} --split {split} --out {folder}`")
    return json.loads(path.read_text())


def summarise_stage(run: Path, baseline: Path, candidate: Path, dataset: str = "office", split: str = "validation",
                    methods: tuple[str, ...] = ("recgpt", "blend"), stage: str = "sft") -> dict[str, Any]:
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "run_config.json").read_text())
    history = metrics.get("log_history", [])
    summary: dict[str, Any] = {
        "stage": stage, "dataset": dataset, "split": split, "run_config": config,
        "loss": curve(history, "loss"), "grad_norm": curve(history, "grad_norm"),
        "train_runtime_s": next((h["train_runtime"] for h in history if "train_runtime" in h), None),
        "global_step": metrics.get("global_step"), "examples": metrics.get("examples"), "methods": {},
    }
    for method in methods:
        base, cand = _eval(baseline, dataset, split, method), _eval(candidate, dataset, split, method)
        rows = {}
        for metric in METRICS:
            diff = paired_difference(cand["per_user_hits"], base["per_user_hits"], metric)
            rows[metric] = {"baseline": base["metrics"].get(metric), "candidate": cand["metrics"].get(metric),
                            "difference": diff["difference"] if diff else None,
                            "standard_error": diff["standard_error"] if diff else None, "users": diff["users"] if diff else 0}
        summary["methods"][method] = {
            "baseline_model": base.get("model"), "candidate_model": cand.get("model"), "all": rows,
            "new_interest": {"users": cand.get("new_interest_users"),
                             "baseline": base.get("new_interest_metrics", {}), "candidate": cand.get("new_interest_metrics", {})},
            "completion_tokens_per_user": [base.get("completion_tokens_per_user"), cand.get("completion_tokens_per_user")],
            "tag_diversity": [base.get("tag_diversity"), cand.get("tag_diversity")],
            "flagged_users": [base.get("flagged_users"), cand.get("flagged_users")],
        }
    return summary


def _setting(config: dict[str, Any], name: str, before: str) -> Any:
    """A run config's TRL field, or the name it had in run configs written before the fields took TRL's names."""
    return config.get(name, config.get(before))


def _f(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(summary: dict[str, Any], command: str) -> str:
    config = summary["run_config"]
    loss = summary["loss"]
    lines = [f"# Training stage `{summary['stage']}` against its starting policy: {summary['dataset']} {summary['split']}", "",
             f"> Candidate: **{model_label(next(iter(summary['methods'].values()))['candidate_model'])}**; baseline: "
             f"**{model_label(next(iter(summary['methods'].values()))['baseline_model'])}**.", "",
             f"Run: {summary['examples'] or config.get('max_users')} examples, {summary['global_step']} optimiser steps "
             f"(batch {_setting(config, 'per_device_train_batch_size', 'batch_size')} × accumulation "
             f"{_setting(config, 'gradient_accumulation_steps', 'grad_accum')}), LoRA rank {config.get('lora_r')} "
             f"(alpha {config.get('lora_alpha')}), learning rate {config.get('learning_rate')}, precision {config.get('precision')}, "
             f"{_f(summary['train_runtime_s'], 0)} s of training. Loss {_f(loss[0][1] if loss else None)} at step "
             f"{loss[0][0] if loss else '—'} → {_f(loss[-1][1] if loss else None)} at step {loss[-1][0] if loss else '—'}.", ""]
    for method, block in summary["methods"].items():
        lines += [f"## {method}", "", "| metric | baseline | candidate | candidate − baseline | ± SE | users |",
                  "|---|---:|---:|---:|---:|---:|"]
        for metric, row in block["all"].items():
            lines.append(f"| {metric} | {_f(row['baseline'])} | {_f(row['candidate'])} | {_f(row['difference'], 3)} | "
                         f"{_f(row['standard_error'], 3)} | {row['users']} |")
        ni = block["new_interest"]
        lines += ["", f"New-interest slice ({ni['users']} users whose next category is absent from the history): "
                  + ", ".join(f"{m} {_f(ni['baseline'].get(m))} → {_f(ni['candidate'].get(m))}" for m in METRICS if m in ni["candidate"]) + ".",
                  f"Completion tokens per user {_f(block['completion_tokens_per_user'][0], 0)} → {_f(block['completion_tokens_per_user'][1], 0)}; "
                  f"tag diversity {_f(block['tag_diversity'][0])} → {_f(block['tag_diversity'][1])}; "
                  f"flagged users {block['flagged_users'][0]} → {block['flagged_users'][1]}.", ""]
    lines += ["## Reading it", "",
              "- The difference is paired: the same users under both policies, so the user-to-user spread cancels; "
              "± is the standard error of the mean difference. Within about 2 standard errors a difference is noise.",
              "- cat HR, item HR and the new-interest slice are `recgpt eval`'s (`reports/eval-office-test.md` defines them); "
              f"each folder holds `recgpt eval --method METHOD --split {summary['split']} --out FOLDER` run against that "
              "policy's server (`recgpt serve --policy base`, or the trained policy).",
              "", "## Reproduce", "", f"    {command}", ""]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> Path | None:
    if not plots.available():
        return None
    methods = list(summary["methods"])
    with plots.figure(path, 1, 1 + len(methods), size=(5 + 4.5 * len(methods), 3.8)) as (_, axes):
        left = axes[0]
        if summary["loss"]:
            left.plot([s for s, _ in summary["loss"]], [v for _, v in summary["loss"]], "o-", ms=3)
        left.set_xlabel("optimiser step")
        left.set_ylabel("training loss (completion tokens)")
        left.set_title(f"{summary['stage']} loss")
        for ax, method in zip(axes[1:], methods):
            rows = summary["methods"][method]["all"]
            xs = list(range(len(rows)))
            ax.bar([x - 0.2 for x in xs], [r["baseline"] or 0 for r in rows.values()], 0.4, label="baseline")
            ax.bar([x + 0.2 for x in xs], [r["candidate"] or 0 for r in rows.values()], 0.4,
                   yerr=[r["standard_error"] or 0 for r in rows.values()], capsize=3, label=summary["stage"])
            ax.set_xticks(xs, [m.replace("_hr@", " HR@").replace("cat", "cat") for m in rows], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{method}, {summary['split']}")
            ax.legend(fontsize=8)
    return path


def write_stage_report(summary: dict[str, Any], stem: Path, command: str) -> tuple[Path, Path, Path | None]:
    model = model_label(next(iter(summary["methods"].values()), {}).get("candidate_model"))
    return write_report_files(stem, {**summary, "command": command}, model, lambda result, _: markdown(result, command), plot)
