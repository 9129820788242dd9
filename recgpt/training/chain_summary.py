"""What `recgpt train chain` decides and reports, from the eval reports its stages wrote under `<ledger>/evals/`.

- `validation_choice`: the validation-best trained policy, and whether it beats the base there (only then it ships);
- `summarise`: every policy alone on the test users (paired against the base, ± SE), its answer concentration (the
  collapse check: distinct categories named, the most-named one's share), CRS against SUM round by round, the full
  graph for the base and the shipped policy, and each stage's wall time;
- `markdown`: `reports/training-chain-<dataset>.md`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recgpt.eval.metrics import paired_difference
from recgpt.training.chain import ChainConfig, Ledger


def eval_report(config: ChainConfig, name: str, split: str, method: str = "expert") -> dict[str, Any] | None:
    """The eval JSON a stage wrote for policy `name` (None when that stage has not run)."""
    folder = config.ledger / "evals" / f"{name}-{split}"
    path = folder / f"eval-{config.key}-{split}-{method}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def primary_metric(report: dict[str, Any], k: int) -> str:
    """Category HR@K at the dataset's first level (L2 for a tree, genre for flat labels)."""
    return f"cat_hr@{k}_{report.get('slice_level', 'l2')}"


def trained_policies(config: ChainConfig) -> list[str]:
    names = ["sft"] + [f"{s}-{r}" for r in range(1, config.rounds + 1) for s in config.shapings]
    return names + (["grpo"] if config.grpo else [])


def validation_choice(config: ChainConfig) -> dict[str, Any]:
    """{'best', 'metric', 'scores' (name -> value), 'base', 'beats_base', 'paired'}: what ships is decided here."""
    base = eval_report(config, "base", "validation")
    if base is None:
        raise FileNotFoundError("the base's validation report is missing: run the chain's val-base stage")
    metric = primary_metric(base, config.k)
    scores = {name: report["metrics"][metric] for name in trained_policies(config)
              if (report := eval_report(config, name, "validation")) is not None}
    if not scores:
        raise FileNotFoundError("no trained policy has a validation report yet")
    best = max(scores, key=lambda name: (scores[name], -trained_policies(config).index(name)))  # a tie: the earlier stage
    best_report = eval_report(config, best, "validation")
    assert best_report is not None
    paired = paired_difference(best_report["per_user_hits"], base["per_user_hits"], metric)
    return {"best": best, "metric": metric, "scores": scores, "base": base["metrics"][metric],
            "beats_base": scores[best] > base["metrics"][metric], "paired": paired}


def lineage(config: ChainConfig, name: str, sft_adapter: Path) -> list[Path]:
    """The adapters that make policy `name`, applied in order on the base."""
    if name == "sft":
        return [sft_adapter]
    if name == "grpo":
        return [sft_adapter, config.runs / "grpo" / "final"]
    shaping, _, r = name.partition("-")
    return [sft_adapter] + [config.runs / f"dpo-{shaping}-{i}" / "final" for i in range(1, int(r) + 1)]


def _row(report: dict[str, Any], base: dict[str, Any] | None, metrics: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"users": report.get("users_scored"), "model": report.get("model"),
                           "metrics": {m: report["metrics"].get(m) for m in metrics},
                           "concentration": report.get("answer_concentration"),
                           "completion_tokens_per_user": report.get("completion_tokens_per_user")}
    if base is not None:
        row["against_base"] = {m: paired_difference(report["per_user_hits"], base["per_user_hits"], m) for m in metrics}
        new = base.get("new_interest_user_ids") or []
        row["against_base_new_interest"] = {m: paired_difference(report["per_user_hits"], base["per_user_hits"], m, new)
                                            for m in metrics}
    return row


def summarise(config: ChainConfig) -> dict[str, Any]:
    base = eval_report(config, "base", "test")
    metrics = [primary_metric(base, config.k), "item_hr@10"] if base is not None else []
    rows: dict[str, Any] = {}
    for name in ["base", *trained_policies(config)]:
        report = eval_report(config, name, "test")
        if report is not None and base is not None:
            rows[name] = _row(report, None if name == "base" else base, metrics)
    shapings: dict[str, Any] = {}
    if {"crs", "sum"} <= set(config.shapings):
        for r in range(1, config.rounds + 1):
            crs, sum_ = eval_report(config, f"crs-{r}", "test"), eval_report(config, f"sum-{r}", "test")
            if crs is not None and sum_ is not None:
                shapings[f"round {r}"] = {m: paired_difference(crs["per_user_hits"], sum_["per_user_hits"], m) for m in metrics}
    full: dict[str, Any] = {}
    full_base = eval_report(config, "full-base", "test", "recgpt")
    for name in ("full-base", "full-shipped"):
        report = eval_report(config, name, "test", "recgpt")
        if report is not None:
            full[name] = _row(report, None if name == "full-base" or full_base is None else full_base,
                              [primary_metric(report, 10), "item_hr@10"])
    rows_base = rows.get("base")
    steps = []  # the paper's ordering, step by step, paired on the test users
    crs_names = [f"crs-{r}" for r in range(1, config.rounds + 1) if f"crs-{r}" in rows]
    chain = ["base", "sft"] + crs_names[-1:]
    for lower, upper in zip(chain, chain[1:]):
        low, high = eval_report(config, lower, "test"), eval_report(config, upper, "test")
        if low is not None and high is not None and metrics:
            steps.append({"from": lower, "to": upper, "paired": paired_difference(high["per_user_hits"], low["per_user_hits"], metrics[0])})
    try:
        choice: dict[str, Any] | None = validation_choice(config)
    except FileNotFoundError:
        choice = None
    return {"config": json.loads(config.model_dump_json()), "metrics": metrics, "policies": rows,
            "crs_against_sum": shapings, "full_graph": full, "validation_choice": choice,
            "rounds": round_summaries(config), "targets": targets(rows, shapings, full, metrics, rows_base, steps),
            "stages": Ledger(config.ledger).read()}


def round_summaries(config: ChainConfig) -> dict[str, Any]:
    """Each offline round's `summary.json` (sample-round): reward density, trainer rows, the chosen answers' collapse."""
    out: dict[str, Any] = {}
    for folder in sorted(config.ledger.glob("round-*")):
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        out[folder.name] = {k: summary.get(k) for k in ("prompts", "answers", "failed_answers", "zero_std_share",
                                                          "mean_reward", "mean_parts", "rows", "collapse", "served_model")}
    return out


def _z(paired: dict[str, float] | None) -> float | None:
    if not paired or not paired.get("standard_error"):
        return None
    return paired["difference"] / paired["standard_error"]


def targets(policies: dict[str, Any], shapings: dict[str, Any], full: dict[str, Any], metrics: list[str],
            base: dict[str, Any] | None, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 34's bars, each with its numbers: the shipped policy beats the base (z >= 2, full graph, test), CRS beats
    SUM (z >= 2), no collapse (distinct categories >= the base's, most-named share within 10 points), and the paper's
    ordering base < SFT < CRS on the primary metric."""
    out: dict[str, Any] = {}
    shipped = (full.get("full-shipped") or {}).get("against_base") or {}
    zs = {m: _z(v) for m, v in shipped.items()}
    out["shipped_beats_base"] = {"z": zs, "met": any(z is not None and z >= 2 for z in zs.values())} if zs else None
    last = list(shapings.values())[-1] if shapings else {}
    crs_z = {m: _z(v) for m, v in last.items()}
    out["crs_beats_sum"] = {"z": crs_z, "met": any(z is not None and z >= 2 for z in crs_z.values())} if crs_z else None
    base_conc = (base or {}).get("concentration") or {}
    collapse: dict[str, Any] = {}
    for name, row in policies.items():
        conc = row.get("concentration") or {}
        if name == "base" or not conc or not base_conc:
            continue
        distinct, share = conc.get("distinct_categories"), conc.get("top_category_user_share")
        ok = (distinct is not None and share is not None and distinct >= base_conc.get("distinct_categories", 0)
              and share <= base_conc.get("top_category_user_share", 0) + 0.10)
        collapse[name] = {"distinct": distinct, "top_share": share, "met": ok}
    out["no_collapse"] = {"base": {"distinct": base_conc.get("distinct_categories"),
                                   "top_share": base_conc.get("top_category_user_share")}, "policies": collapse}
    if metrics:
        measured = [{**step, "z": _z(step["paired"])} for step in steps]
        done = len(measured) == 2 and measured[-1]["to"].startswith("crs-")
        out["paper_order"] = {"metric": metrics[0], "steps": measured,
                              "holds": done and all(step["paired"]["difference"] > 0 for step in measured),
                              "complete": done}
    return out


def _f(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _d(paired: dict[str, float] | None) -> str:
    return "—" if not paired else f"{paired['difference']:+.3f} ± {paired['standard_error']:.3f}"


def markdown(summary: dict[str, Any], model: str) -> str:
    config, metrics = summary["config"], summary["metrics"]
    lines = [f"# Training chain on {config['dataset']}", "",
             f"Base model `{config['base']}`; each policy served alone (`recgpt eval --method expert`, one Distributed "
             f"Expert call per user, K={config['k']}) on the same {config['eval_users']} test users (seed 0); differences "
             "are paired over those users, ± one standard error. What ships was decided on "
             f"{config['val_users']} validation users, never on test. Reproduce: `recgpt train chain --dataset "
             f"{config['dataset']}` (every stage resumes).", ""]
    if summary.get("pending"):
        lines += [f"**Partial: {len(summary['pending'])} stages still to run** ({', '.join(summary['pending'])}); "
                  "every figure below is final for what it covers.", ""]
    if metrics:
        lines += ["| policy | " + " | ".join(metrics) + " | − base (" + metrics[0] + ") | − base (" + metrics[1]
                  + ") | new-interest − base | distinct categories | most-named share |",
                  "|---|" + "---:|" * (len(metrics) + 5)]
        for name, row in summary["policies"].items():
            against = row.get("against_base") or {}
            new = row.get("against_base_new_interest") or {}
            conc = row.get("concentration") or {}
            lines.append(f"| {name} | " + " | ".join(_f(row["metrics"].get(m)) for m in metrics)
                         + f" | {_d(against.get(metrics[0]))} | {_d(against.get(metrics[1]))} | {_d(new.get(metrics[0]))}"
                         + f" | {conc.get('distinct_categories', '—')} | {_f(conc.get('top_category_user_share'), 2)} |")
        lines.append("")
    if summary["crs_against_sum"]:
        lines += ["## CRS against SUM", "", "| round | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
        for label, diffs in summary["crs_against_sum"].items():
            lines.append(f"| {label} | " + " | ".join(_d(diffs.get(m)) for m in metrics) + " |")
        lines.append("")
    if summary["full_graph"]:
        lines += ["## Full graph (test)", "", "| run | metrics | − full-base |", "|---|---|---|"]
        for name, row in summary["full_graph"].items():
            shown = ", ".join(f"{m} {_f(v)}" for m, v in row["metrics"].items())
            against = ", ".join(f"{m} {_d(v)}" for m, v in (row.get("against_base") or {}).items()) or "—"
            lines.append(f"| {name} | {shown} | {against} |")
        lines.append("")
    choice = summary["validation_choice"]
    if choice:
        lines += ["## What ships (validation)", "",
                  f"{choice['metric']}: base {_f(choice['base'])}; " + ", ".join(f"{n} {_f(v)}" for n, v in choice["scores"].items())
                  + f". Best: **{choice['best']}** ({_d(choice['paired'])} against the base, paired); "
                  + ("it ships." if choice["beats_base"] else "it does not beat the base, so nothing new ships."), ""]
    rounds = summary.get("rounds") or {}
    if rounds:
        lines += ["## Offline rounds (samples drawn by the round's starting policy under the serving grammar)", "",
                  "Groups whose G rewards are all equal (TRL's `frac_reward_zero_std`): no preference pair, no gradient.", "",
                  "| round | prompts | answers (failed) | zero-std CRS sparse → dense | zero-std SUM sparse → dense | "
                  "mean r_rank | DPO pairs CRS / SUM | RFT rows | chosen answers' top category (share) |",
                  "|---|---:|---:|---|---|---:|---|---:|---|"]
        for name, r in rounds.items():
            z, rows_ = r.get("zero_std_share") or {}, r.get("rows") or {}
            col = r.get("collapse") or {}
            lines.append(f"| {name} | {r.get('prompts')} | {r.get('answers')} ({r.get('failed_answers')}) | "
                         f"{_f(z.get('crs-sparse'), 2)} → {_f(z.get('crs-dense'), 2)} | {_f(z.get('sum-sparse'), 2)} → "
                         f"{_f(z.get('sum-dense'), 2)} | {_f((r.get('mean_parts') or {}).get('rank'))} | "
                         f"{rows_.get('dpo-crs', '—')} / {rows_.get('dpo-sum', '—')} | {rows_.get('rft', '—')} | "
                         f"{col.get('chosen_top_category') or '—'} ({_f(col.get('chosen_top_share'), 2)}) |")
        lines.append("")
    goals = summary.get("targets") or {}
    if goals:
        lines += ["## Targets (issue 34)", ""]
        for key, label in (("shipped_beats_base", "The shipped policy beats the base in the full graph (z ≥ 2)"),
                           ("crs_beats_sum", "CRS beats SUM, last round (z ≥ 2)")):
            goal = goals.get(key)
            shown = "not measured yet" if not goal else (("met" if goal["met"] else "missed") + ": z " + ", ".join(
                f"{m} {_f(z, 2)}" for m, z in goal["z"].items()))
            lines.append(f"- {label}: {shown}.")
        collapse = goals.get("no_collapse") or {}
        base_c = collapse.get("base") or {}
        for name, c in (collapse.get("policies") or {}).items():
            lines.append(f"- No collapse, {name}: {c['distinct']} distinct categories (base {base_c.get('distinct')}), "
                         f"most-named share {_f(c['top_share'], 2)} (base {_f(base_c.get('top_share'), 2)}): "
                         + ("met." if c["met"] else "missed."))
        order = goals.get("paper_order")
        if order:
            shown = "; ".join(f"{step['to']} − {step['from']} {_d(step['paired'])} (z {_f(step['z'], 1)})" for step in order["steps"])
            verdict = ("holds" if order["holds"] else "breaks at " + ", ".join(
                f"{s['from']} → {s['to']}" for s in order["steps"] if s["paired"]["difference"] <= 0) if order["complete"]
                       else "not measured to CRS yet" + ("; a step so far goes down" if any(
                           s["paired"]["difference"] <= 0 for s in order["steps"]) else ""))
            lines.append(f"- The paper's ordering base < SFT < CRS on {order['metric']}, paired on test ({shown or 'nothing yet'}): "
                         f"{verdict}.")
        lines.append("")
    if summary["stages"]:
        lines += ["## Stage wall times", "", "| stage | s | machine |", "|---|---:|---|"]
        lines += [f"| {name} | {info.get('wall_s')} | {info.get('machine')} |" for name, info in summary["stages"].items()]
        lines.append("")
    lines += [f"Model: {model}.", ""]
    return "\n".join(lines)
