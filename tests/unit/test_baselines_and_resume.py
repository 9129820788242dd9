from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.data.jsonl import load_jsonl
from recgpt.eval import baselines, harness
from recgpt.eval.harness import EvalConfig, ResultStore, UserResult, run_eval
from recgpt.eval.report import per_user_metrics, summarise

SEQS = {"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["b", "d"], "u4": ["a", "c"]}


def test_popularity_counts_training_sequences_and_skips_history() -> None:
    model = baselines.Popularity().fit(SEQS)
    assert model.ranking == ["a", "b", "c", "d"]  # a:3, b:3 tie broken by id, c:2, d:1
    assert model.recommend(["a"], 2) == ["b", "c"]
    assert model.recommend([], 10) == ["a", "b", "c", "d"]  # K larger than the catalogue


def test_itemknn_cosine_cooccurrence() -> None:
    model = baselines.ItemKNN().fit(SEQS)
    # co-occurrence with "d": only "b" (1 user); sim(d,b)=1/sqrt(1*3)
    i, j = model.index["d"], model.index["b"]
    assert model.sim[i, j] == pytest.approx(1 / 3**0.5)
    assert model.recommend(["d"], 1) == ["b"]
    assert "d" not in model.recommend(["d"], 3)
    assert model.recommend(["unknown-item"], 2) == ["a", "b"]  # cold user: popularity


def test_sasrec_learns_a_deterministic_successor() -> None:
    sequences = {f"u{n}": ["x", "y", "z"] for n in range(40)} | {f"v{n}": ["p", "q", "r"] for n in range(40)}
    model = baselines.SASRec(dim=16, layers=1, heads=1, maxlen=4, epochs=40, batch_size=16, lr=5e-3, show_progress=False).fit(sequences)
    assert model.losses[-1] < model.losses[0]
    assert model.recommend(["x", "y"], 1) == ["z"]
    assert model.recommend(["p"], 1) == ["q"]
    assert "x" not in model.recommend(["x"], 5)


def test_history_categories_by_frequency_then_recency(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    cats = baselines.history_categories(data, ["n1", "p1", "p2", "n2"])
    assert cats == ["Office > Writing > Pens", "Office > Paper > Notes", "Office > Paper > Notebooks"]


def test_training_sequences_never_contain_the_target(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    seqs = baselines.training_sequences(data, "test")
    assert seqs["u1"] == ["p1", "n1", "p2"]
    assert baselines.training_sequences(data, "validation")["u1"] == ["p1", "n1"]


def test_result_store_resumes_and_tolerates_a_cut_line(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    first = UserResult(user_id="1", target_item="a", target_labels={}, new_interest={})
    store.append(first)
    with store.path.open("a") as handle:
        handle.write('{"user_id": "2", "target_')  # killed mid-write
    assert list(store.load()) == ["1"]
    # the resumed run's result for user 2 starts a fresh line instead of gluing onto the cut one
    store.append(first.model_copy(update={"user_id": "2"}))
    assert list(store.load()) == ["1", "2"]


def test_classical_eval_resumes_without_redoing_users(small_dataset_dir: Path, isolated_home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = EvalConfig(dataset=str(small_dataset_dir), split="test", users=2, method="popularity", k_tags=2, k_items=[1, 2])
    _, results, store = run_eval(config, isolated_home, show_progress=False)
    assert [r.user_id for r in results] == harness.sample_users(load_jsonl(small_dataset_dir), "test", 2, 0)
    lines_before = store.read_text().count("\n")
    # drop the last user's line (as if killed before it finished) and resume
    kept = store.read_text().splitlines()[:-1]
    store.write_text("\n".join(kept) + "\n")
    calls: list[str] = []
    real = harness.base_result

    def spy(dataset, user_id, split, levels):  # noqa: ANN001, ANN202
        calls.append(user_id)
        return real(dataset, user_id, split, levels)

    monkeypatch.setattr(harness, "base_result", spy)
    _, resumed, _ = run_eval(config, isolated_home, show_progress=False)
    assert len(calls) == 1 and len(resumed) == 2 and store.read_text().count("\n") == lines_before
    summary = summarise(config, resumed, ("l2", "leaf"))
    assert summary["users_scored"] == 2 and set(summary["metrics"]) == set(per_user_metrics(resumed[0], config, ("l2", "leaf")))


def test_a_smaller_run_reads_the_users_a_larger_run_already_scored(small_dataset_dir: Path, isolated_home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    larger = EvalConfig(dataset=str(small_dataset_dir), split="test", users=2, method="popularity", k_tags=2, k_items=[1, 2])
    _, scored, store = run_eval(larger, isolated_home, show_progress=False)
    calls: list[str] = []
    real = harness.base_result
    monkeypatch.setattr(harness, "base_result", lambda *a: calls.append(a[1]) or real(*a))
    _, smaller, same_store = run_eval(larger.model_copy(update={"users": 1}), isolated_home, show_progress=False)
    assert same_store == store and calls == []
    assert [r.user_id for r in smaller] == harness.sample_users(load_jsonl(small_dataset_dir), "test", 1, 0)
    assert smaller[0] in scored


def test_report_hand_computed_summary(tmp_path: Path) -> None:
    config = EvalConfig(dataset="x", users=2, method="popularity", k_tags=1, k_items=[1])
    hit = UserResult(user_id="1", target_item="a", target_labels={"l2": ["A > B"]}, new_interest={"l2": True},
                     ranked_items=["a", "b"], ranked_categories=["A > B > C"])
    miss = UserResult(user_id="2", target_item="z", target_labels={"l2": ["Q > R"]}, new_interest={"l2": False},
                      ranked_items=["a"], ranked_categories=["A > B"])
    failed = UserResult(user_id="3", target_item="z", target_labels={"l2": []}, new_interest={"l2": False}, error="down")
    summary = summarise(config, [hit, miss, failed], ("l2",))
    assert summary["metrics"] == {"cat_hr@1_l2": 0.5, "item_hr@1": 0.5, "item_ndcg@1": 0.5}
    assert summary["new_interest_metrics"]["item_hr@1"] == 1.0 and summary["new_interest_users"] == 1
    assert summary["users_failed"] == 1 and summary["users_scored"] == 2
    json.dumps(summary)  # serialisable
