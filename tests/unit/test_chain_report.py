"""The chain report reads the chain's own outputs (no recomputation) and shows every stage and curve; its stages come
from the ledger, so a new stage appears without an edit to the report."""

from __future__ import annotations

import json
from pathlib import Path

from recgpt.training.chain_report import summarise_chain, write_chain_report


def _stage_report(path: Path, hr: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "metrics": {"cat_hr@5_l2": hr, "item_hr@30": hr / 2}, "new_interest_metrics": {"cat_hr@5_l2": hr / 3, "item_hr@30": 0.0},
        "users_scored": 100, "users_failed": 0, "flagged_users": 2, "new_interest_users": 40, "tags_per_user": 5.0,
        "tag_diversity": 0.4, "completion_tokens_per_user": 120.0, "prompt_tokens_per_user": 950.0, "model": "m",
        "config": {"k_tags": 5, "users": 100, "split": "test", "seed": 0}}))


def _stage_with_hits(reports: Path, stage: str, hits: list[float]) -> None:
    """A stage's expert eval whose per-user cat hits are `hits` (the paired differences read them)."""
    path = reports / "training" / stage / "eval-office-test-expert.json"
    _stage_report(path, sum(hits) / len(hits))
    report = json.loads(path.read_text())
    report["per_user_hits"] = {f"u{i}": {"cat_hr@5_l2": h, "item_hr@30": 0.0} for i, h in enumerate(hits)}
    path.write_text(json.dumps(report))


def test_chain_report_tabulates_stages_curves_and_times(tmp_path: Path) -> None:
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    (runs / "grpo-crs").mkdir(parents=True)
    (runs / "rm-listwise").mkdir()
    (runs / "stage_times.tsv").write_text("eval-base\t1500\nsft\t900\tH200 GPU\n")
    history = [{"step": s, "rewards/crs/mean": 0.1 * s, "rewards/r_acc/mean": 0.2, "kl": 0.01 * s, "grad_norm": 1.0} for s in range(1, 7)]
    history.append({"step": 6, "train_runtime": 321.0})
    (runs / "grpo-crs" / "metrics.json").write_text(json.dumps({"log_history": history, "global_step": 6}))
    (runs / "grpo-crs" / "run_config.json").write_text(json.dumps({"shaping": "crs", "output_dir": "/runs/grpo-crs"}))
    (runs / "rm-listwise" / "run_config.json").write_text(json.dumps({"loss_type": "listwise"}))
    (runs / "rm-listwise" / "metrics.json").write_text(json.dumps({
        "log_history": [], "global_step": 10, "ranking_accuracy_before": 0.5, "ranking_accuracy_after": 0.75,
        "held_out_pairs": 12, "held_out_groups": 6, "train_groups": 18}))
    _stage_report(reports / "training" / "base" / "eval-office-test-expert.json", 0.2)
    _stage_report(reports / "training" / "grpo-crs" / "eval-office-test-expert.json", 0.3)

    summary = summarise_chain(runs, reports)
    assert list(summary["stages"]) == ["base", "grpo-crs"]
    assert summary["wall_s"] == {"eval-base": {"seconds": 1500, "machine": "2 CPU cores"}, "sft": {"seconds": 900, "machine": "H200 GPU"}}
    assert summary["training"]["grpo-crs"]["curves"]["rewards/crs/mean"][0] == (1, 0.1)
    assert summary["training"]["grpo-crs"]["train_runtime_s"] == 321.0

    md, js, _ = write_chain_report(runs, reports)
    text = md.read_text()
    assert "| base | 100 | 0.200 | 0.100 |" in text and "| grpo-crs | 100 | 0.300 | 0.150 |" in text
    assert "0.500 (untrained head) → **0.750** on 12 ordered pairs" in text
    assert "crs 0.200 → 0.500" in text  # mean of the first and last three steps
    assert "| eval-base | 1500 |" in text
    assert json.loads(js.read_text())["stages"]["base"]["metrics"]["cat_hr@5_l2"] == 0.2


def test_first_and_last_windows_never_share_a_log() -> None:
    from recgpt.training.chain_report import _first_last

    assert _first_last([(10, 1.9)]) == (1.9, None)  # one log: no fake "1.9 → 1.9"
    assert _first_last([(1, 2.0), (2, 1.0)]) == (2.0, 1.0)
    first, last = _first_last([(i, float(i)) for i in range(1, 8)])
    assert (first, last) == (2.0, 6.0)


def test_paired_differences_are_reported_against_their_noise(tmp_path: Path) -> None:
    from recgpt.eval.metrics import paired_difference

    base = {f"u{i}": {"hr": float(i % 2 == 0)} for i in range(100)}           # 50 hits
    crs = {f"u{i}": {"hr": float(i % 2 == 0 or i % 5 == 1)} for i in range(100)}  # + the 10 odd users with i % 5 == 1
    d = paired_difference(crs, base, "hr")
    assert d is not None and d["users"] == 100 and d["difference"] == 0.10
    assert 0.02 < d["standard_error"] < 0.04 and d["z"] > 2
    assert paired_difference({"u1": {"hr": 1.0}}, base, "hr") is None  # one shared user: no spread to measure

    reports = tmp_path / "reports"
    for stage, hits in (("base", base), ("grpo-crs", crs), ("grpo-sum", base)):
        path = reports / "training" / stage / "eval-office-test-expert.json"
        _stage_report(path, 0.5)
        report = json.loads(path.read_text())
        report["per_user_hits"] = {u: {"cat_hr@5_l2": h["hr"], "item_hr@30": 0.0} for u, h in hits.items()}
        report["new_interest_user_ids"] = [f"u{i}" for i in range(20)]  # CRS adds u1 and u11 (u6, u16 hit already): +2/20
        report["model"] = f"recgpt-policy@/models/{stage}-model[model.safetensors:1:2]"
        path.write_text(json.dumps(report))
    (tmp_path / "runs").mkdir()
    md, _, _ = write_chain_report(tmp_path / "runs", reports)
    text = md.read_text()
    assert "| grpo-crs − grpo-sum | +0.100 ± 0.030 (z +3.3) | +0.000 ± 0.000 (z +0.0) |" in text
    slice_table = text.split("The same on the new-interest slice:")[1]
    assert "| grpo-crs − grpo-sum | +0.100 ± 0.069 (z +1.5) |" in slice_table
    assert "Served folders: base `base-model`, grpo-sum `grpo-sum-model`, grpo-crs `grpo-crs-model`." in text


def test_a_discarded_run_keeps_its_reason_and_its_difference_against_sft(tmp_path: Path) -> None:
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    (runs / "grpo-crs-tokenlen").mkdir(parents=True)
    (runs / "grpo-crs-tokenlen" / "why.md").write_text("It learned to pad tags with filler.\n")
    for stage, hits in (("sft", [1.0, 1.0, 0.0, 1.0]), ("grpo-crs-tokenlen", [0.0, 1.0, 0.0, 0.0])):
        _stage_with_hits(reports, stage, hits)
    summary = summarise_chain(runs, reports)
    assert list(summary["stages"]) == ["sft"]  # not a stage of the chain
    assert summary["discarded"]["grpo-crs-tokenlen"]["versus_sft"]["cat_hr@5_l2"]["difference"] == -0.5
    text = write_chain_report(runs, reports)[0].read_text()
    assert "## Discarded run: grpo-crs-tokenlen" in text and "It learned to pad tags with filler." in text
    assert "| grpo-crs-tokenlen | 0.250 | 0.125 |" in text and "| grpo-crs-tokenlen − sft | -0.500 ± 0.289 |" in text


def test_a_resumed_grpo_run_counts_every_sessions_steps_and_the_report_shows_collapse(tmp_path: Path) -> None:
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    (runs / "grpo-crs").mkdir(parents=True)
    (runs / "stage_times.tsv").write_text("grpo-crs\t250\n")  # the last session's invocation only
    history = [{"step": s, "rewards/crs/mean": 0.1, "grad_norm": 0.0 if s % 2 else 1.0, "step_time": 100.0} for s in range(1, 7)]
    history.append({"step": 6, "train_runtime": 250.0})
    (runs / "grpo-crs" / "metrics.json").write_text(json.dumps({"log_history": history, "global_step": 6}))
    (runs / "grpo-crs" / "run_config.json").write_text(json.dumps({"shaping": "crs"}))
    _stage_report(reports / "training" / "base" / "eval-office-test-expert.json", 0.2)
    crs = reports / "training" / "grpo-crs" / "eval-office-test-expert.json"
    _stage_report(crs, 0.1)
    crs.write_text(json.dumps({**json.loads(crs.read_text()), "answer_concentration": {
        "distinct_categories": 10, "top_category": "Mailers", "top_category_user_share": 0.735}}))

    summary = summarise_chain(runs, reports)
    assert summary["wall_s"]["grpo-crs"]["seconds"] == 600
    assert summary["training"]["grpo-crs"]["zero_gradient_steps"] == 3
    text = write_chain_report(runs, reports)[0].read_text()
    assert "| 5.00 | 0.400 | 10 | 0.73 |" in text  # the collapsed stage: 10 categories over all users
    assert "| 5.00 | 0.400 | — | — |" in text  # a stage evaluated before the measure existed
    assert "3 steps with zero gradient" in text and "| grpo-crs | 600 | 2 CPU cores (steps summed over sessions) |" in text


def test_a_new_stage_appears_from_the_ledger_alone(tmp_path: Path) -> None:
    """A stage the report has never heard of (its eval and its run in the ledger) gets its rows, its training run and a
    paired difference against the stage it started from; an attempt kept aside under another name (it ran as a run
    the ledger has) is no stage."""
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    for name, config in (("sft", {"model": "/models/base", "output_dir": "/runs/sft"}),
                         ("dpo", {"model": "/runs/sft/final", "output_dir": "/runs/dpo"}),
                         ("sft-first-try", {"model": "/models/base", "output_dir": "/runs/sft"})):
        (runs / name).mkdir(parents=True)
        (runs / name / "run_config.json").write_text(json.dumps(config))
        (runs / name / "metrics.json").write_text(json.dumps({"global_step": 4, "log_history": [
            {"step": 2, "loss": 2.0}, {"step": 4, "loss": 1.0}, {"step": 4, "train_runtime": 9.0}]}))
    for stage, hits in (("base", [0.0, 0.0, 1.0, 0.0]), ("sft", [1.0, 0.0, 1.0, 0.0]), ("dpo", [1.0, 1.0, 1.0, 0.0]),
                        ("sft-first-try", [0.0, 0.0, 0.0, 0.0])):
        _stage_with_hits(reports, stage, hits)

    summary = summarise_chain(runs, reports)
    assert list(summary["stages"]) == ["base", "sft", "dpo"]  # the paper's stages in its order, then the others
    assert list(summary["training"]) == ["sft", "dpo"]
    assert [d["stages"] for d in summary["differences"].values()] == [["sft", "base"], ["dpo", "sft"]]
    text = write_chain_report(runs, reports)[0].read_text()
    assert text.startswith("# Training chain on Office: base → SFT → DPO\n")
    assert "| dpo | 100 | 0.750 |" in text and text.count("| dpo | 100 |") == 1
    assert "| dpo − sft | +0.250 ± 0.250 (z +1.0) |" in text
    assert "- **DPO**: 4 steps, 9 s; loss 2.000 → 1.000 (steps 2 → 4)." in text and "sft-first-try" not in text
