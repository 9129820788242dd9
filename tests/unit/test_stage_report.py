"""`recgpt train stage-report`: a stage against its starting policy, paired over the same users."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recgpt.training import cli
from recgpt.training.stage_report import METRICS, summarise_stage, write_stage_report


def eval_file(folder: Path, method: str, hits: dict[str, float], model: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    per_user = {u: {m: h for m in METRICS} for u, h in hits.items()}
    metrics = {m: sum(hits.values()) / len(hits) for m in METRICS}
    (folder / f"eval-office-validation-{method}.json").write_text(json.dumps({
        "model": model, "metrics": metrics, "per_user_hits": per_user, "new_interest_users": 1,
        "new_interest_metrics": metrics, "completion_tokens_per_user": 100.0, "tag_diversity": 0.5, "flagged_users": 0}))


def test_paired_differences_and_the_loss_curve(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"global_step": 10, "examples": 40, "log_history": [
        {"loss": 1.5, "step": 5}, {"loss": 0.5, "step": 10}, {"train_runtime": 12.0, "step": 10}]}))
    config = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "lora_r": 8}
    (run / "run_config.json").write_text(json.dumps(config))
    eval_file(tmp_path / "base", "recgpt", {"a": 0.0, "b": 0.0, "c": 1.0, "d": 0.0}, "p@/m/Base[x]")
    eval_file(tmp_path / "sft", "recgpt", {"a": 1.0, "b": 0.0, "c": 1.0, "d": 1.0}, "p@/m/Base-policy-1234[x]")
    summary = summarise_stage(run, tmp_path / "base", tmp_path / "sft", methods=("recgpt",))
    row = summary["methods"]["recgpt"]["all"]["item_hr@10"]
    assert row["baseline"] == 0.25 and row["candidate"] == 0.75 and row["difference"] == 0.5 and row["users"] == 4
    assert row["standard_error"] == pytest.approx(0.288675, abs=1e-5)  # stdev of (1,0,0,1) / sqrt(4)
    assert summary["loss"] == [(5, 1.5), (10, 0.5)] and summary["train_runtime_s"] == 12.0
    md, js, _ = write_stage_report(summary, tmp_path / "out" / "training-sft-office-validation", "recgpt train stage-report")
    text = md.read_text()
    assert "Base-policy-1234" in text and "| item_hr@10 | 0.250 | 0.750 | 0.500 | 0.289 | 4 |" in text
    assert "(batch 4 × accumulation 1), LoRA rank 8" in text
    (run / "run_config.json").write_text(json.dumps({"batch_size": 4, "grad_accum": 1, "lora_r": 8}))  # before TRL's names
    summary = summarise_stage(run, tmp_path / "base", tmp_path / "sft", methods=("recgpt",))
    assert "(batch 4 × accumulation 1), LoRA rank 8" in write_stage_report(summary, tmp_path / "old", "c")[0].read_text()
    assert json.loads(js.read_text())["methods"]["recgpt"]["all"]["cat_hr@10_l2"]["difference"] == 0.5


def test_a_missing_eval_is_one_clear_line(tmp_path: Path) -> None:
    for name in ("run", "base", "sft"):
        (tmp_path / name).mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    (tmp_path / "run" / "run_config.json").write_text("{}")
    result = CliRunner().invoke(cli.train_cli, ["stage-report", "--run", str(tmp_path / "run"), "--baseline", str(tmp_path / "base"),
                                                "--candidate", str(tmp_path / "sft"), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "eval-office-validation-recgpt.json is missing" in str(result.exception)
