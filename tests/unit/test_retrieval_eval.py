"""`recgpt eval-retrieval`'s machinery on a hand-made shop, with the fake retriever and embedder (no Chroma, no MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.eval.retrieval_eval import (
    MemoRetriever,
    RetrievalEvalConfig,
    choose,
    run_retrieval_eval,
    tags_of,
    write_retrieval_report,
)
from recgpt.services.resources import default_registry
from tests.conftest import write_jsonl
from tests.unit.fakes import FakeRetriever
from tests.unit.test_collaborative import TINY, bag_of_words, one_thread, shop  # noqa: F401 - one_thread: a fixture


@pytest.fixture()
def shop_dir(tmp_path: Path) -> Path:
    data = shop()
    folder = tmp_path / "shop"
    folder.mkdir()
    write_jsonl(folder / "items.jsonl", [i.model_dump(mode="json") for i in data.items.values()])
    write_jsonl(folder / "histories.jsonl", [u.model_dump(mode="json") for u in data.users.values()])
    return folder


def test_tag_sources() -> None:
    data = shop()
    assert tags_of("history", data, ["n1", "a1", "n2"], "b1", 10) == ["Office > Paper > Notebooks", "Office > Writing > Pens"]
    assert tags_of("oracle_leaf", data, [], "n3", 10) == ["Office > Paper > Notebooks > Covers"]
    assert tags_of("oracle_l2", data, [], "n3", 10) == ["Office > Paper"]
    with pytest.raises(ValueError, match="unknown tag source"):
        tags_of("nope", data, [], "n3", 10)


def test_the_memo_answers_what_the_retriever_answers() -> None:
    data = shop()
    memo = MemoRetriever(FakeRetriever(data), depth=6)
    for k in (1, 3, 6):
        assert memo.search_items(["gel pen", "notebook"], k, {"p2"}) == FakeRetriever(data).search_items(["gel pen", "notebook"], k, {"p2"})
    assert memo.nearest_categories(["gel pen"]) == FakeRetriever(data).nearest_categories(["gel pen"])


def test_a_grid_run_writes_both_reports(shop_dir: Path, tmp_path: Path) -> None:
    dataset = default_registry().dataset(str(shop_dir))
    config = RetrievalEvalConfig(dataset=str(shop_dir), split="validation", users=12, betas=[0.0, 1.0], depths=[2, 5], k_items=[1, 3])
    result = run_retrieval_eval(config, tmp_path / "home", show_progress=False, semantic=FakeRetriever(dataset),
                                embedder=bag_of_words, hparams={**TINY, "epochs": 2})
    assert len(result["rows"]) == 3 * (1 + 2 * 2) and all(r["users"] == 12 for r in result["rows"])
    assert result["best"]["source"] == "history" and result["best"]["beta"] in (0.0, 1.0)
    assert result["collaborative_model"]["split"] == "validation" and result["collaborative_model"]["trained_now"]
    assert result["sasrec"]["retriever"] == "sasrec alone"
    oracle = [r for r in result["rows"] if r["source"] == "oracle_leaf"]
    assert all(r["metrics"]["cat_hr@10_leaf"] == 1.0 for r in oracle)  # the target's own category maps to itself
    md, json_path, _ = write_retrieval_report(result, tmp_path / "reports")
    assert md.name == "retrieval-shop-validation.md" and "**(chosen)**" in md.read_text() and "no LLM" in md.read_text()
    assert json.loads(json_path.read_text())["model"] == "no LLM"
    again = run_retrieval_eval(config, tmp_path / "home", show_progress=False, semantic=FakeRetriever(dataset),
                               embedder=bag_of_words, hparams={**TINY, "epochs": 2})
    assert not again["collaborative_model"]["trained_now"] and again["rows"] == result["rows"]  # the cached model


def test_choose_breaks_ties_towards_the_semantic_and_the_shallow() -> None:
    def row(beta: float, depth: int, hr10: float) -> dict:
        return {"source": "history", "retriever": "collaborative", "beta": beta, "depth": depth,
                "metrics": {"item_hr@10": hr10, "item_hr@30": 0.2, "item_ndcg@10": 0.1}}

    best = choose([row(0.2, 50, 0.1), row(0.5, 100, 0.1), row(0.5, 30, 0.1), row(0.9, 30, 0.05)], "history")
    assert best is not None and (best["beta"], best["depth"]) == (0.5, 30)
