"""`recgpt bench-decode`: the report's arithmetic and the command's input checks (the runs are `recgpt eval` runs,
covered by tests/integration/test_bench_real.py against a real server)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from recgpt.eval import decode_cuts
from recgpt.eval.decode_cuts import VARIANTS, DecodeCutsConfig, markdown, plot, run_decode_cuts
from recgpt.eval.runs import UserResult
from tests.unit.test_cli import recgpt


def _result(user: str, hit: bool, completion: int) -> UserResult:
    return UserResult(user_id=user, target_item="i", target_labels={"genre": ["Drama"] if hit else ["Horror"]},
                      new_interest={"genre": False}, ranked_categories=["Drama"], tags=["a", "b"],
                      llm_calls=5, prompt_tokens=4000, completion_tokens=completion)


def test_each_variant_is_its_own_eval_run_and_differences_are_paired(monkeypatch, tmp_path: Path) -> None:
    seen: list[dict] = []

    def fake_run_eval(config, home, show_progress=True):  # noqa: ANN001, ANN202
        seen.append(dict(config.context))
        cut = config.context["expert_rationale_chars"] == 0
        results = [_result(f"u{i}", hit=(i % 2 == 0) or (cut and i == 1), completion=400 if cut else 600) for i in range(6)]
        return config, results, tmp_path / f"store-{len(seen)}.jsonl"

    monkeypatch.setattr(decode_cuts, "run_eval", fake_run_eval)
    monkeypatch.setattr(decode_cuts, "default_registry", lambda: SimpleNamespace(dataset=lambda name: None))
    monkeypatch.setattr(decode_cuts, "levels_of", lambda dataset: ("genre",))
    config = DecodeCutsConfig(users=6, k=1, variants=["shipped", "no-rationale"])
    result = run_decode_cuts(config, tmp_path, show_progress=False)
    assert seen == [VARIANTS["shipped"], VARIANTS["no-rationale"]]  # the overrides written out, defaults or not
    diff = result["differences_vs_shipped"]["no-rationale"]["cat_hr@1_genre"]
    assert diff["users"] == 6 and abs(diff["difference"] - 1 / 6) < 1e-9 and diff["standard_error"] > 0
    text = markdown(result, "Qwen2.5-Coder-0.5B-Instruct")
    assert "Qwen2.5-Coder-0.5B-Instruct" in text and "| no-rationale | 200 (33%) | +0.167 ±" in text
    assert plot(result, tmp_path / "cuts.png") is None or (tmp_path / "cuts.png").is_file()


def test_bench_decode_checks_its_variants_before_any_call() -> None:
    result = recgpt("bench-decode", "--variants", "no-reason,fastest", RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1 and "--variants must include shipped" in result.stderr and "Traceback" not in result.stderr
    assert recgpt("bench-decode", "--help").returncode == 0
