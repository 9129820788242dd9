from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from recgpt.eval.harness import EvalConfig, UserResult
from recgpt.eval.model_bench import ModelBenchConfig, decide, markdown, phase_figures, plot


def figures(hr: float, users: int, upm: float) -> dict:
    copies = {"path": 0.1, "category_name": 0.3, "title": 0.0, "any": 0.4, "tags": 100.0}
    phase = {"metrics": {"cat_hr@10_l2": hr, "cat_hr@10_leaf": hr / 3, "cat_hr@5_l2": hr, "cat_hr@5_leaf": hr / 4,
                         "item_hr@10": 0.0, "item_hr@30": 0.01},
             "new_interest_metrics": {"cat_hr@10_l2": hr / 2}, "users_scored": users, "users_failed": 0, "flagged_users": 2,
             "first_try_valid_share": 0.97, "completion_tokens_per_user": 450.0, "max_completion_tokens_per_user": 610,
             "prompt_tokens_per_user": 3000.0, "tag_copies": copies, "users_per_min": upm, "server_cpu_s_per_user": 120 / upm}
    return {"title": "t", "gguf_sha256": "0" * 64, "served": "recgpt-policy@/m", "server_start_s": 50.0,
            "server_rss_gib": 3.2, "expert": phase, "graph": phase}


def test_quality_decides_when_the_gap_is_beyond_noise() -> None:
    models = {"big": figures(0.30, 200, 2.0), "small": figures(0.09, 200, 3.0)}
    decision = decide(models, 10, "l2")
    assert decision["chosen"] == "big" and "best full-graph cat_hr@10_l2" in decision["reason"]


def test_efficiency_decides_between_models_within_noise() -> None:
    models = {"big": figures(0.27, 200, 2.0), "small": figures(0.25, 200, 3.0)}
    decision = decide(models, 10, "l2")
    assert decision["chosen"] == "small" and "within 2 standard errors" in decision["reason"]
    assert decision["hits_per_cpu_hour"]["small"] > decision["hits_per_cpu_hour"]["big"]


def test_report_lists_every_figure_for_every_model(tmp_path: Path) -> None:
    models = {"big": figures(0.30, 200, 2.0), "small": figures(0.09, 200, 3.0)}
    result = {"config": ModelBenchConfig(models=list(models)).model_dump(), "models": models, "cores": 2,
              "decision": decide(models, 10, "l2")}
    text = markdown(result, "")
    for needle in ("cat HR@5 L2", "cat HR@10 L2", "first try", "copying", "completion tokens", "users/min", "server start",
                   "resident memory", "Default: **big**", "10% / 30% / 0%", "97.0%"):
        assert needle in text, needle
    assert plot(result, tmp_path / "p.png") is not None and (tmp_path / "p.png").stat().st_size > 0


def test_throughput_follows_littles_law_and_validity_counts_first_tries(monkeypatch) -> None:
    from recgpt.eval import model_bench

    dataset = SimpleNamespace(items={})
    monkeypatch.setattr(model_bench, "default_registry", lambda: SimpleNamespace(dataset=lambda name: dataset))
    monkeypatch.setattr(model_bench, "levels_of", lambda dataset: ("l2",))
    monkeypatch.setattr(model_bench, "copy_shares", lambda tags, dataset, split: {"any": 0.0})
    rows = [UserResult(user_id=str(i), target_item="t", target_labels={"l2": ["A > B"]}, new_interest={"l2": False},
                       ranked_categories=["A > B > C"], tags=["x y"], llm_calls=5, first_try_valid_calls=4, wall_s=60.0)
            for i in range(4)]
    out = phase_figures(EvalConfig(method="recgpt", k_tags=10), rows, concurrency=8)
    assert out["users_per_min"] == 8.0  # 8 users always in flight, 60 s each
    assert out["first_try_valid_share"] == 0.8 and out["metrics"]["cat_hr@10_l2"] == 1.0
