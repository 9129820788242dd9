"""The blended channel: quota slots, deduplication, a dry channel, and the quota's tuning and lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.errors import RecGPTError
from recgpt.eval.blend import blend, fuse, quota_label, sweep, tuned_quota
from recgpt.eval.report import base_method, paired_difference


def test_the_quota_owns_its_share_of_every_prefix() -> None:
    classical = [f"s{i}" for i in range(10)]
    llm = [f"l{i}" for i in range(10)]
    merged = blend(classical, llm, 0.3, 10)
    assert merged == ["s0", "s1", "s2", "l0", "s3", "s4", "l1", "s5", "s6", "l2"]  # slots 4, 7, 10
    assert blend(classical, llm, 0.0, 10) == classical
    assert blend(classical, llm, 1.0, 10) == llm
    assert blend(classical, llm, 0.5, 4) == ["s0", "l0", "s1", "l1"]


def test_an_item_both_channels_rank_is_placed_once_and_the_next_one_takes_the_slot() -> None:
    merged = blend(["a", "b", "c", "d"], ["b", "x", "a", "y"], 0.5, 4)
    assert merged == ["a", "b", "c", "x"]  # llm "b" at slot 2, so classical skips its own "b"; llm slot 4 is "x"
    assert len(merged) == len(set(merged))


def test_a_dry_channel_gives_its_slots_to_the_other() -> None:
    assert blend(["a", "b", "c"], [], 0.5, 3) == ["a", "b", "c"]
    assert blend([], ["x", "y"], 0.3, 3) == ["x", "y"]
    assert blend(["a"], ["a"], 0.5, 5) == ["a"]
    with pytest.raises(ValueError, match="quota"):
        blend(["a"], ["b"], 1.5, 2)


def test_the_tuned_quota_is_the_best_and_ties_go_to_the_smaller() -> None:
    best, grid = sweep({0.0: [0, 1], 0.3: [1, 1], 0.6: [1, 1], 1.0: [0, 0]})
    assert best == 0.3 and grid == {"0.0": 0.5, "0.3": 1.0, "0.6": 1.0, "1.0": 0.0}


def test_test_reads_the_quota_validation_chose(tmp_path: Path) -> None:
    with pytest.raises(RecGPTError, match="--method blend --split validation"):
        tuned_quota(tmp_path, "office")
    (tmp_path / "eval-office-validation-blend.json").write_text(json.dumps({"blend": {"quota": 0.4}}))
    assert tuned_quota(tmp_path, "office") == 0.4
    assert quota_label(0.3) == "blend@0.30"


def test_the_cli_refuses_a_bad_quota_in_one_line() -> None:
    from typer.testing import CliRunner

    from recgpt.app import cli

    for bad, message in (("1.5", "--quota must be within [0, 1] (got 1.5)"), ("lots", "--quota must be auto or a number in [0, 1] (got 'lots')")):
        result = CliRunner().invoke(cli, ["eval", "--method", "blend", "--quota", bad])
        assert isinstance(result.exception, RecGPTError) and str(result.exception) == message


def _result(user: str, target: str, items: list[str]):  # noqa: ANN202
    from recgpt.eval.runs import UserResult

    return UserResult(user_id=user, target_item=target, target_labels={"l2": [], "leaf": []}, new_interest={},
                      ranked_items=items, tags=["t"] if user else [])


def test_run_blend_merges_both_stored_channels_tunes_on_validation_and_refuses_gaps(
        small_dataset_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.eval import harness
    from recgpt.eval.runs import EvalConfig

    channels = {"sasrec": [_result("u1", "n2", ["d1", "c1", "n2"]), _result("u2", "p2", ["n1", "n2", "c1"])],
                "recgpt": [_result("u1", "n2", ["n2", "d1"]), _result("u2", "p2", ["p2", "n1"])]}
    asked: list[tuple[str, dict]] = []

    def fake_run_eval(config: EvalConfig, home: Path, show_progress: bool = True):  # noqa: ANN202
        asked.append((config.method, config.context))
        return config, channels[config.method], home / f"{config.method}.jsonl"

    monkeypatch.setattr(harness, "run_eval", fake_run_eval)
    config = EvalConfig(dataset=str(small_dataset_dir), split="validation", users=2, method="blend", k_items=[1, 2],
                        context={"num_personas": 2})
    results, path, info = harness.run_blend(config, isolated_home, show_progress=False)
    assert asked == [("sasrec", {}), ("recgpt", {"num_personas": 2})]  # SASRec's key ignores LLM context overrides
    # at K=2 the LLM channel gets a slot from quota 0.5 on, and its items are the targets: 0.5 is the smallest best
    assert info["quota_source"] == "tuned on this split" and info["quota"] == 0.5
    assert info["grid"]["0.4"] == 0.0 and info["grid"]["0.5"] == info["grid"]["1.0"] == 1.0
    assert [r.ranked_items for r in results] == [["d1", "n2"], ["n1", "p2"]]
    assert [r.tags for r in results] == [["t"], ["t"]]  # the LLM channel's tags travel with the blend
    assert path.is_file() and len(path.read_text().splitlines()) == 2
    with pytest.raises(RecGPTError, match="tuned on the validation split only"):
        harness.run_blend(config.model_copy(update={"split": "test"}), isolated_home, show_progress=False)
    channels["recgpt"] = channels["recgpt"][:1]
    with pytest.raises(RecGPTError, match="1 of 2 users have no recgpt result"):
        harness.run_blend(config.model_copy(update={"quota": 0.3}), isolated_home, show_progress=False)


def test_fusion_adds_weighted_reciprocal_ranks_so_agreement_wins() -> None:
    classical, llm = ["a", "b", "c"], ["c", "x", "a"]
    # a: 0.5/61 + 0.5/63, c: 0.5/63 + 0.5/61 (a tie: classical order), b: 0.5/62, x: 0.5/62 (tie: classical first)
    assert fuse(classical, llm, 0.5, 4) == ["a", "c", "b", "x"]
    assert fuse(classical, llm, 0.0, 3) == ["a", "b", "c"]  # weight 0: SASRec's order (LLM-only items last)
    assert fuse(classical, llm, 1.0, 2) == ["c", "x"]
    scores = {"b": 0.8 / 62, "x": 0.2 / 62}
    assert fuse(classical, llm, 0.2, 5).index("b") < fuse(classical, llm, 0.2, 5).index("x") and scores["b"] > scores["x"]
    assert fuse(["a", "a", "b"], ["b"], 0.5, 5) == ["b", "a"]  # a repeat counts once: b = 0.5/62 + 0.5/61 > a = 0.5/61
    with pytest.raises(ValueError, match="weight"):
        fuse(classical, llm, -0.1, 2)


def test_a_named_rows_tuned_share_is_read_from_its_own_validation_report(tmp_path: Path) -> None:
    with pytest.raises(RecGPTError, match="--method fusion --split validation --name fusion\\+evidence"):
        tuned_quota(tmp_path, "office", "fusion+evidence")
    (tmp_path / "eval-office-validation-fusion+evidence.json").write_text(json.dumps({"blend": {"quota": 0.7}}))
    assert tuned_quota(tmp_path, "office", "fusion+evidence") == 0.7
    assert quota_label(0.4, "fusion+evidence") == "fusion+evidence@0.40"
    assert base_method("fusion+evidence@0.40") == "fusion" and base_method("sasrec_categories") == "sasrec_categories"


def test_paired_differences_use_shared_users_and_their_standard_error() -> None:
    a = {"u1": {"m": 1.0}, "u2": {"m": 1.0}, "u3": {"m": 0.0}, "u4": {"m": 1.0}}
    b = {"u1": {"m": 0.0}, "u2": {"m": 1.0}, "u3": {"m": 0.0}, "u5": {"m": 1.0}}
    diff = paired_difference(a, b, "m")
    assert diff is not None and diff["users"] == 3 and diff["diff"] == pytest.approx(1 / 3)
    assert diff["se"] == pytest.approx((1 / 3) ** 0.5 / 3 ** 0.5) and diff["z"] == pytest.approx(1.0)
    assert paired_difference(a, b, "m", ["u1", "u5"]) is None  # one shared user: no standard error


def test_the_score_merge_ranks_the_tags_categories_items_by_sasrec(small_dataset_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.eval import harness
    from recgpt.services.resources import Registry

    registry = Registry()
    dataset = registry.dataset(str(small_dataset_dir))

    class Stub:
        def score(self, history, ids):  # noqa: ANN001, ANN201
            return [{"p1": 9.0, "p2": 1.0, "n1": 5.0, "n2": 3.0, "d1": 8.0, "c1": 0.0}[i] for i in ids]

    registry.sasrec = lambda *a, **k: Stub()  # type: ignore[method-assign]
    monkeypatch.setattr(harness, "default_registry", lambda: registry)
    # the tags name Paper and Writing > Pens: d1 (8.0) lies outside both; p1 is history
    ranked = harness.score_merged(dataset, "test", ["p1"], ["Office > Paper", "Office > Writing > Pens", ""], 10)
    assert ranked == ["n1", "n2", "p2"]
    assert harness.score_merged(dataset, "test", [], [], 10) == []  # no tag, no list


def test_a_row_name_must_start_with_its_method() -> None:
    from typer.testing import CliRunner

    from recgpt.app import cli

    for bad in ("sasrec+x", "recgpt evidence", "recgpt/../x"):
        result = CliRunner().invoke(cli, ["eval", "--method", "recgpt", "--name", bad])
        assert isinstance(result.exception, RecGPTError) and "--name must be the method" in str(result.exception)


def _row(config, hits: dict[str, float], new: list[str], model: str | None = None) -> dict:  # noqa: ANN001
    metrics = ("item_hr@10", "cat_hr@10_l2")
    return {"comparison_key": config.comparison_key(), "per_user_hits": {u: {m: h for m in metrics} for u, h in hits.items()},
            "metrics": {m: sum(hits.values()) / len(hits) for m in metrics}, "new_interest_metrics": {m: 0.0 for m in metrics},
            "users_scored": len(hits), "new_interest_users": len(new), "new_interest_user_ids": new, "slice_level": "l2",
            "model": model}


def test_the_comparison_pairs_rows_with_the_baselines_and_each_variant_with_its_own_method(tmp_path: Path) -> None:
    from recgpt.eval.report import write_comparison
    from recgpt.eval.runs import EvalConfig

    config = EvalConfig(dataset="office", split="test", users=4, k_items=[10])
    users = ["u1", "u2", "u3", "u4"]
    rows = {"sasrec": [1, 0, 0, 1], "sasrec_categories": [0, 0, 1, 1], "recgpt": [1, 1, 0, 0],
            "recgpt+noevidence": [0, 1, 0, 0], "fusion": [1, 0, 1, 1], "fusion+score": [1, 1, 1, 1]}
    for name, hits in rows.items():
        (tmp_path / f"eval-office-test-{name}.json").write_text(json.dumps(_row(config, dict(zip(users, map(float, hits))), ["u1", "u2"])))
    (tmp_path / "eval-office-test-stale.json").write_text(json.dumps({**_row(config, {"u1": 1.0}, []), "comparison_key": {}}))
    md_path, json_path, _ = write_comparison(config, tmp_path)
    combined = json.loads(json_path.read_text())
    assert "stale" not in combined["methods"]  # another run's row (other key) is not compared
    evidence = combined["variant_differences"]["recgpt+noevidence"]
    assert evidence["against"] == "recgpt"
    assert evidence["slices"]["all"]["item_hr@10"]["diff"] == pytest.approx(-0.25)  # 0,1,0,0 - 1,1,0,0 over 4 users
    assert evidence["slices"]["new_interest"]["item_hr@10"]["diff"] == pytest.approx(-0.5)  # u1, u2 only
    assert combined["variant_differences"]["fusion+score"]["slices"]["all"]["item_hr@10"]["diff"] == pytest.approx(0.25)
    assert set(combined["variant_differences"]) == {"recgpt+noevidence", "fusion+score"}  # a method is no variant
    assert combined["paired_differences"]["sasrec"]["recgpt"]["all"]["item_hr@10"]["diff"] == pytest.approx(0.0)
    assert combined["paired_differences"]["sasrec_categories"]["recgpt+noevidence"]["all"]["item_hr@10"]["diff"] == pytest.approx(-0.25)
    text = md_path.read_text()
    assert "## Paired differences of each variant against its own method" in text
    assert "| recgpt+noevidence | recgpt | all | 4 | -0.250 ±" in text
