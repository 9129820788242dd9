"""`recgpt train report`: one report for the training chain (base -> SFT -> GRPO-SUM -> GRPO-CRS as
`scripts/train_chain.sh` runs it).

Reads what the chain's commands wrote (nothing is recomputed), and takes its stages from there too, so a new stage
appears without an edit here: each stage's `recgpt eval --method expert` report under `reports/training/<stage>/`, each
run folder of the ledger (`metrics.json`, the TRL/transformers log history, and `run_config.json`), the reward-data
summary and `stage_times.tsv` (wall seconds per step of `scripts/train_chain.sh`). Writes
`reports/training-chain-<dataset>.md/.json/.png`.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from recgpt import plots
from recgpt.eval.metrics import paired_difference
from recgpt.eval.report import model_label

PAPER_HR30 = {"base": 23.08, "sft": 29.20, "grpo-sum": 27.38, "grpo-crs": 32.60}
"""The paper's tag HR@30 (Taobao) of the stages it reports, in its order: the report lists those stages in this order,
then the ledger's other stages by name."""
CURVE_KEYS = ("rewards/{shaping}/mean", "rewards/r_acc/mean", "rewards/r_align/mean", "rewards/r_div/mean", "rewards/r_len/mean",
              "rewards/gate_align/mean", "rewards/gate_div/mean", "rewards/gate_len/mean", "rewards/same_answer/mean", "kl", "grad_norm",
              "completions/mean_length")
SCALE_UP = """\
- **Data**: `--max-users` of `train sft`/`grpo` (all ~2.8k Office training users), `RD_USERS` of reward data.
- **GRPO**: `--max-steps`, `--batch-size` (prompts per step = batch / G), `--num-generations` (G, the paper uses 8+),
  `--max-completion-length`; on a GPU TRL can generate with vLLM (`use_vllm` in `GRPOConfig`).
- **Precision/device**: `--no-cpu` (TRAIN_FLAGS), bf16 on GPUs; `recgpt serve --dtype bfloat16`.
- **Eval**: `EVAL_USERS` (200 test users per stage here), `VAL_USERS` (the validation users that decide what ships), `--concurrency`.
- **Policy size**: any HF causal LM via `--model`; `JUDGE=agent|single` grades reward data with whatever
  `RECGPT_BASE_URL` serves when `recgpt train reward-data` runs (serve a larger judge model there for that step);
  `RM_MODEL` picks the reward model's trunk and `RM_FLAGS` its window and data.
"""


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _mean(values: list[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


CPU_MACHINE = "2 CPU cores"


def stage_times(runs: Path) -> dict[str, dict[str, Any]]:
    """Wall seconds per finished stage, and where it ran: `stage_times.tsv` rows are `name<TAB>seconds[<TAB>machine]`,
    the machine column only where a stage ran elsewhere than the 2-core CPU box (the SFT run on a lent GPU)."""
    times: dict[str, dict[str, Any]] = {}
    path = runs / "stage_times.tsv"
    if path.is_file():
        for line in path.read_text().splitlines():
            name, seconds, *machine = line.split("\t")
            if seconds.strip().isdigit():
                times[name] = {"seconds": int(seconds), "machine": (machine[0].strip() if machine else "") or CPU_MACHINE}
    return times


def curve(log_history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h[key])) for h in log_history if key in h and "step" in h]


def _ran_as(runs: Path, name: str) -> str:
    """The run folder a ledger run was trained in (its config's `output_dir`): its own name, unless a later run replaced
    it and it was kept aside under another (`rm-listwise-rules-only` ran as `rm-listwise`)."""
    config = _read_json(runs / name / "run_config.json") or {}
    return Path(config.get("output_dir") or name).name


def ledger_runs(runs: Path) -> list[str]:
    """The chain's training runs: the ledger's folders with a `metrics.json`, without the attempts set aside: the
    discarded ones (a `why.md` says why) and those a later run replaced (they ran as another run of the ledger)."""
    names = sorted(path.parent.name for path in runs.glob("*/metrics.json"))
    return [name for name in names if not (runs / name / "why.md").is_file()
            and (_ran_as(runs, name) == name or _ran_as(runs, name) not in names)]


def chain_stages(runs: Path, reports: Path, dataset: str, split: str) -> list[str]:
    """The chain's evaluated stages: the folders of `reports/training/` holding an expert eval, except the attempts the
    ledger set aside; the paper's stages first, in its order, then the others by name."""
    found = {path.parent.name for path in (reports / "training").glob(f"*/eval-{dataset}-{split}-expert.json")}
    kept = {path.parent.name for pattern in ("*/metrics.json", "*/why.md") for path in runs.glob(pattern)}
    found -= kept - set(ledger_runs(runs))
    return [stage for stage in PAPER_HR30 if stage in found] + sorted(found - set(PAPER_HR30))


def run_entry(runs: Path, name: str) -> dict[str, Any]:
    """What the report shows of one training run, by what the run logged: a reward model's held-out ranking, a GRPO
    run's reward curves (its config has a `shaping`), any other run's loss curves."""
    metrics = _read_json(runs / name / "metrics.json") or {}
    config = _read_json(runs / name / "run_config.json")
    history = metrics.get("log_history", [])
    runtime = next((h["train_runtime"] for h in reversed(history) if "train_runtime" in h), None)
    entry: dict[str, Any] = {"global_step": metrics.get("global_step"), "train_runtime_s": runtime, "config": config}
    shaping = (config or {}).get("shaping")
    if "ranking_accuracy_after" in metrics:
        entry.update({k: metrics.get(k) for k in ("ranking_accuracy_before", "ranking_accuracy_after", "held_out_pairs",
                                                  "held_out_groups", "train_groups", "held_out_judge_pairs",
                                                  "ranking_accuracy_after_judge_pairs", "align_offset",
                                                  "train_score_mean_bad", "train_score_mean_not_bad")})
    elif shaping:
        entry["curves"] = {key.format(shaping=shaping): curve(history, key.format(shaping=shaping)) for key in CURVE_KEYS}
        # a run resumed across sessions: train_runtime is the last session's only; the steps' own times add up
        entry["step_time_total_s"] = sum(float(h["step_time"]) for h in history if "step_time" in h) or None
        entry["zero_gradient_steps"] = sum(1 for h in history if "grad_norm" in h and float(h["grad_norm"]) == 0.0)
    else:
        entry["loss"] = curve(history, "loss")
        entry["mean_token_accuracy"] = curve(history, "mean_token_accuracy")
        entry["train_loss"] = next((h["train_loss"] for h in reversed(history) if "train_loss" in h), None)
    return entry


def summarise_chain(runs: Path, reports: Path, dataset: str = "office", split: str = "test") -> dict[str, Any]:
    out: dict[str, Any] = {"runs": str(runs), "stages": {}, "training": {}, "wall_s": stage_times(runs)}
    stages = chain_stages(runs, reports, dataset, split)
    for stage in stages:
        report = _read_json(reports / "training" / stage / f"eval-{dataset}-{split}-expert.json") or {}
        out["stages"][stage] = {k: report.get(k) for k in (
            "metrics", "new_interest_metrics", "users_scored", "users_failed", "flagged_users", "new_interest_users",
            "tags_per_user", "tag_diversity", "answer_concentration", "completion_tokens_per_user", "prompt_tokens_per_user",
            "model", "config")}
    if out["stages"]:
        metrics = list(next(iter(out["stages"].values()))["metrics"] or {})
        out["differences"] = stage_differences(reports, dataset, split, metrics, comparisons(runs, stages))
    out["discarded"] = discarded_runs(runs, reports, dataset, split)
    data_summary = _read_json(runs / "reward-groups.summary.json")
    if data_summary:
        out["training"]["reward_data"] = data_summary
    entries = {name: run_entry(runs, name) for name in ledger_runs(runs)}
    for name in training_order(entries, stages):
        entry = out["training"][name] = entries[name]
        wall = out["wall_s"].get(name)
        if wall and entry.get("step_time_total_s") and entry["step_time_total_s"] > wall["seconds"]:
            # the TSV times one invocation: a run resumed in a later session shows only that session's part
            wall["seconds"] = round(entry["step_time_total_s"])
            wall["machine"] += " (steps summed over sessions)"
    return out


def discarded_runs(runs: Path, reports: Path, dataset: str, split: str) -> dict[str, dict[str, Any]]:
    """Runs of the ledger that were replaced (a folder `<stage>-<what was wrong>` with a `why.md`): their evals and
    their paired difference against SFT stay in the report, so a failed attempt is not lost from the record."""
    out: dict[str, dict[str, Any]] = {}
    sft = _read_json(reports / "training" / "sft" / f"eval-{dataset}-{split}-expert.json")
    for why in sorted(runs.glob("*/why.md")):
        name = why.parent.name
        report = _read_json(reports / "training" / name / f"eval-{dataset}-{split}-expert.json")
        entry: dict[str, Any] = {"why": why.read_text().strip(), "metrics": report and report.get("metrics"), "versus_sft": {},
                                 "answer_concentration": report and report.get("answer_concentration")}
        if report and sft and report.get("per_user_hits") and sft.get("per_user_hits"):
            entry["versus_sft"] = {m: paired_difference(report["per_user_hits"], sft["per_user_hits"], m) for m in report["metrics"]}
        out[name] = entry
    return out


PAIRS = (("crs", "grpo-crs", "grpo-sum"), ("crs-base", "grpo-crs", "base"), ("sft-base", "sft", "base"), ("crs-sft", "grpo-crs", "sft"))
"""The comparisons the chain is run for, (name, stage, against): the paper's CRS against SUM, and each trained stage
against where it started. A stage that none of them names is compared with the stage it started from."""


def started_from(runs: Path, stage: str, stages: list[str]) -> str | None:
    """The stage a trained stage started from: the stage whose run folder its `--model` was (an SFT run's `final`),
    else the untrained base."""
    config = _read_json(runs / stage / "run_config.json") or {}
    model = Path(config.get("model") or "")
    start = next((s for s in (model.parent.name, model.name) if s in stages and s != stage), None)
    return start or ("base" if "base" in stages and stage != "base" else None)


def comparisons(runs: Path, stages: list[str]) -> list[tuple[str, str, str]]:
    """The paired differences to report: `PAIRS` among these stages, then each stage they leave out against the stage
    it started from."""
    pairs = [pair for pair in PAIRS if pair[1] in stages and pair[2] in stages]
    named = {stage for _, first, second in pairs for stage in (first, second)}
    for stage in stages:
        start = started_from(runs, stage, stages)
        if stage not in named and start is not None:
            pairs.append((f"{stage}-{start}", stage, start))
    return pairs


def stage_differences(reports: Path, dataset: str, split: str, metrics: list[str],
                      pairs: list[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """Each pair's paired difference per metric (CRS − SUM, CRS − base, SFT − base and CRS − SFT in the chain), on all
    users and on the new-interest slice."""
    hits, sliced = {}, {}
    for stage in {stage for _, first, second in pairs for stage in (first, second)}:
        report = _read_json(reports / "training" / stage / f"eval-{dataset}-{split}-expert.json")
        if report is not None and report.get("per_user_hits"):
            hits[stage] = report["per_user_hits"]
            sliced[stage] = report.get("new_interest_user_ids")
    out: dict[str, dict[str, Any]] = {}
    for name, first, second in pairs:
        if first in hits and second in hits:
            out[name] = {"stages": [first, second],
                         "all": {m: paired_difference(hits[first], hits[second], m) for m in metrics}}
            # the slice depends on the user and target only, so both stages' lists agree; older reports lack it
            users = sliced[first] if sliced[first] is not None else sliced[second]
            if users is not None:
                out[name]["new_interest"] = {m: paired_difference(hits[first], hits[second], m, users) for m in metrics}
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def _concentration(concentration: dict[str, Any] | None) -> str:
    if not concentration:
        return "— | —"
    return f"{concentration['distinct_categories']} | {_fmt(concentration['top_category_user_share'], 2)}"


def _first_last(points: list[tuple[int, float]], n: int = 3) -> tuple[float | None, float | None]:
    """Mean of the first and of the last `n` logged values; the two windows never share a log, so a run with one
    log has a first value and no last one (rather than a flat, misleading "x → x")."""
    values = [v for _, v in points]
    n = min(n, len(values) // 2) or 1
    first = _mean(values[:n])
    return first, (_mean(values[-n:]) if len(values) > n else None)


def difference_rows(differences: Any, users: str, metric_names: list[str]) -> list[str]:
    """One table row per stage pair: each metric's paired difference ± its standard error (z), over `users`
    ("all" or "new_interest")."""
    rows = []
    for d in differences:
        cells = []
        for m in metric_names:
            v = d[users].get(m)
            cells.append("—" if v is None else f"{v['difference']:+.3f} ± {v['standard_error']:.3f} (z {v['z']:+.1f})")
        rows.append(f"| {d['stages'][0]} − {d['stages'][1]} | " + " | ".join(cells) + " |")
    return rows


def training_order(training: dict[str, Any], stages: list[str]) -> list[str]:
    """The training runs in the report's order: the reward models by name, then the policies in the stages' order (a
    run not evaluated yet after them, by name)."""
    runs = [name for name in training if name != "reward_data"]
    return sorted(runs, key=lambda name: ("ranking_accuracy_after" not in training[name],
                                          stages.index(name) if name in stages else len(stages), name))


def run_lines(name: str, run: dict[str, Any]) -> list[str]:
    """The report's lines on one training run (`run_entry`)."""
    if "ranking_accuracy_after" in run:
        lines = [f"- **Reward model, {(run['config'] or {}).get('loss_type', name)}**: held-out ranking accuracy "
                 f"{_fmt(run['ranking_accuracy_before'])} (untrained head) → **{_fmt(run['ranking_accuracy_after'])}** on "
                 f"{run['held_out_pairs']} ordered pairs of {run['held_out_groups']} groups "
                 f"({run['train_groups']} training groups, {run['global_step']} steps, {_fmt(run['train_runtime_s'], 0)} s); on the judge's own pairs only: "
                 f"{_fmt(run.get('ranking_accuracy_after_judge_pairs'))} ({run.get('held_out_judge_pairs')} pairs)."]
        if run.get("align_offset") is not None:
            lines.append(f"  - Calibration (training groups): mean score of Bad samples {_fmt(run.get('train_score_mean_bad'))}, "
                         f"of the rest {_fmt(run.get('train_score_mean_not_bad'))}; GRPO's R_align is sigmoid(score − "
                         f"{_fmt(run['align_offset'])}), so CRS's 0.5 gate asks whether an answer scores above a Bad one.")
        return lines
    parts = []
    if "curves" in run:
        for key, points in run["curves"].items():
            if points:
                first, last = _first_last(points, n=10)
                parts.append(f"{key.replace('rewards/', '').replace('/mean', '')} {_fmt(first)} → {_fmt(last)}")
        seconds = run.get("step_time_total_s") or run["train_runtime_s"]
        return [f"- **{name.upper()}**: {run['global_step']} steps, {_fmt(seconds, 0)} s of steps (all sessions), "
                f"{run.get('zero_gradient_steps', '?')} steps with zero gradient (all G rollouts scored alike); "
                "mean of the first → last 10 steps: " + "; ".join(parts) + "."]
    for key in ("loss", "mean_token_accuracy"):
        points = run.get(key) or []
        first, last = _first_last(points)
        if points:
            parts.append(f"{key.replace('_', ' ')} {_fmt(first)} → {_fmt(last)} (steps {points[0][0]} → {points[-1][0]})"
                         if last is not None else f"{key.replace('_', ' ')} {_fmt(first)} at step {points[0][0]} (one log)")
    if run.get("train_loss") is not None:
        parts.append(f"mean training loss {_fmt(run['train_loss'])}")
    return [f"- **{name.upper()}**: {run['global_step']} steps, {_fmt(run['train_runtime_s'], 0)} s; " + "; ".join(parts) + "."]


def markdown(summary: dict[str, Any]) -> str:
    stages = summary["stages"]
    # a stage trained in the chain in capitals (SFT), an untrained one as it is (base)
    chain = " → ".join(stage.upper() if stage in summary["training"] else stage for stage in stages)
    lines = ["# Training chain on Office" + (f": {chain}" if chain else ""), ""]
    if stages:
        served = ", ".join(f"{stage} `{model_label(s.get('model'))}`" for stage, s in stages.items())
        lines += [f"> Model: every stage serves the same base with its own weights merged in. Served folders: {served}.", ""]
    any_stage = next(iter(stages.values()), None)
    if any_stage:
        cfg = any_stage["config"]
        metric_names = list(any_stage["metrics"])
        lines += [f"Policy evaluated alone (`recgpt eval --method expert`: one Distributed Expert call with the training persona, "
                  f"K={cfg['k_tags']} tags → nearest category / interleaved item retrieval), on the same {cfg['users']} "
                  f"{cfg['split']} users (seed {cfg['seed']}) for every stage. Leave-last-out: the prompt holds the history "
                  "before the test target; training used training-prefix cuts only.", "",
                  "| stage | users | " + " | ".join(metric_names) + " | tags/user | tag diversity | categories named (all users) "
                  "| users naming the top one | completion tok/user | failed / flagged | paper HR@30 |",
                  "|---|---:|" + "---:|" * len(metric_names) + "---:|---:|---:|---:|---:|---:|---:|"]
        for stage, s in stages.items():
            lines.append(f"| {stage} | {s['users_scored']} | " + " | ".join(_fmt(s['metrics'].get(m)) for m in metric_names)
                         + f" | {_fmt(s.get('tags_per_user'), 2)} | {_fmt(s.get('tag_diversity'))}"
                         + f" | {_concentration(s.get('answer_concentration'))} | {_fmt(s.get('completion_tokens_per_user'), 0)}"
                         + f" | {s['users_failed']} / {s['flagged_users']} | {PAPER_HR30.get(stage, '—')} |")
        lines += ["", "New-interest slice (target L2 category absent from the history):", "",
                  "| stage | users | " + " | ".join(metric_names) + " |", "|---|---:|" + "---:|" * len(metric_names)]
        for stage, s in stages.items():
            lines.append(f"| {stage} | {s['new_interest_users']} | " + " | ".join(_fmt(s['new_interest_metrics'].get(m)) for m in metric_names) + " |")
        differences = summary.get("differences") or {}
        if differences:
            lines += ["", "Paired differences (the same users; ± one standard error of the mean difference; |z| ≥ 2 is "
                      "outside the noise):", "", "| difference | " + " | ".join(metric_names) + " |",
                      "|---|" + "---:|" * len(metric_names)]
            lines += difference_rows(differences.values(), "all", metric_names)
            sliced = [d for d in differences.values() if d.get("new_interest")]
            if sliced:
                lines += ["", "The same on the new-interest slice:", "", "| difference | " + " | ".join(metric_names) + " |",
                          "|---|" + "---:|" * len(metric_names)]
                lines += difference_rows(sliced, "new_interest", metric_names)
        n = cfg["users"]
        se = (0.15 * 0.85 / n) ** 0.5 if n else 0.0
        lines += ["", f"Noise: with {n} users a hit rate near 0.15 has a binomial standard error of about {se:.3f}, so "
                  f"differences under ~{2 * se:.2f} between stages are not evidence of a change.",
                  "", "The paper's column is its tag HR@30 on Taobao (not comparable in absolute terms: other data, "
                  "a far larger model, another K); it shows the expected ordering."]
    training = summary["training"]
    lines += ["", "## Training runs", ""]
    if "reward_data" in training:
        rd = training["reward_data"]
        lines.append(f"- **Reward data**: {rd['groups']} groups ({rd['groups_with_mixed_grades']} with mixed judge grades), judge grades "
                     f"{rd['grades']}, {rd.get('shuffled_negatives', 0)} in-batch negatives (another user's answer, Bad by construction), "
                     f"{rd['failed_samples']} failed samples, judge abstained on {rd['judge_abstained']}; "
                     f"G={rd['config']['samples']}, judge `{rd['config']['judge_mode']}`.")
        agreement = rd.get("rule_agreement") or {}
        if agreement.get("samples") and rd["config"]["judge_mode"] != "rules":
            lines.append(f"  - Against the rule judge (categories of the cut's next interactions): exact agreement "
                         f"{_fmt(agreement['exact'])}; the judge says Superior on {_fmt(agreement['judge_superior_rate_when_rule_superior'])} "
                         f"of the rule's Superior samples and on {_fmt(agreement['judge_superior_rate_when_rule_bad'])} of its Bad ones.")
    for name in training_order(training, list(stages)):
        lines += run_lines(name, training[name])
    for name, d in (summary.get("discarded") or {}).items():
        lines += ["", f"## Discarded run: {name}", "", d["why"]]
        if d.get("metrics"):
            names = list(d["metrics"])
            lines += ["", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
                      f"| {name} | " + " | ".join(_fmt(d["metrics"][m]) for m in names) + " |"]
            if d["versus_sft"]:
                lines += [f"| {name} − sft | " + " | ".join(
                    f"{d['versus_sft'][m]['difference']:+.3f} ± {d['versus_sft'][m]['standard_error']:.3f}" for m in names) + " |"]
        if d.get("answer_concentration"):
            c = d["answer_concentration"]
            lines += ["", f"Its test answers named {c['distinct_categories']} categories over all users; "
                      f"`{c['top_category']}` was in {c['top_category_user_share']:.0%} of them."]
    if summary["wall_s"]:
        lines += ["", "## Wall time per step (`scripts/train_chain.sh`)", "", "| step | seconds | machine |", "|---|---:|---|"]
        lines += [f"| {name} | {t['seconds']} | {t['machine']} |" for name, t in summary["wall_s"].items()]
    lines += ["", "## Scaling the same commands up", "", SCALE_UP, "## Reproduce", "", "    scripts/train_chain.sh",
              "", "(sizes are environment variables at the top of the script; every step resumes).", ""]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> Path | None:
    if not plots.available():
        return None
    training = summary["training"]
    runs = {n: training[n] for n in training_order(training, list(summary["stages"])) if "curves" in training[n]}
    if not runs:
        return None
    panels = [("shaped reward", lambda n: f"rewards/{runs[n]['config']['shaping']}/mean"),
              ("R_acc", lambda n: "rewards/r_acc/mean"), ("R_align", lambda n: "rewards/r_align/mean"), ("gate pass: all three", None), ("KL", lambda n: "kl"),
              ("grad norm", lambda n: "grad_norm")]
    with plots.figure(path, 2, 3, size=(13, 7)) as (_, axes):
        for ax, (title, key_of) in zip(axes.flat, panels):
            for name, run in runs.items():
                if key_of is None:
                    for gate in ("align", "div", "len"):
                        pts = run["curves"].get(f"rewards/gate_{gate}/mean", [])
                        if pts:
                            ax.plot(*zip(*pts), label=f"{name} {gate}")
                else:
                    pts = run["curves"].get(key_of(name), [])
                    if pts:
                        ax.plot(*zip(*pts), marker=".", label=name)
            ax.set_title(title)
            ax.set_xlabel("step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    return path


def write_chain_report(runs: Path, reports: Path, dataset: str = "office") -> tuple[Path, Path, Path | None]:
    summary = summarise_chain(runs, reports, dataset)
    reports.mkdir(parents=True, exist_ok=True)
    json_path = reports / f"training-chain-{dataset}.json"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    md_path = reports / f"training-chain-{dataset}.md"
    md_path.write_text(markdown(summary))
    return md_path, json_path, plot(summary, reports / f"training-chain-{dataset}.png")
