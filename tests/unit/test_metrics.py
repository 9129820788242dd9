"""Every metric on hand-computed cases, edge cases included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recgpt.data.records import Item
from recgpt.eval.metrics import (
    answer_concentration,
    category_hit_at_k,
    category_key,
    exclusive_recall,
    hit_at_k,
    interleave,
    is_new_interest,
    mean_pairwise_cosine_distance,
    ndcg_at_k,
    path_at_level,
    top_k_distinct,
)

PEN = Item(item_id="p", title="pen", category_path=("Office", "Writing", "Pens"))
PAPER = Item(item_id="q", title="paper", category_path=("Office", "Paper", "Copy"))
MOVIE = Item(item_id="m", title="Toy Story", category_path=("Movies", "Animation"), genres=("Animation", "Comedy"))


def test_category_keys_per_level() -> None:
    assert category_key(PEN, "l2") == {"Office > Writing"}
    assert category_key(PEN, "leaf") == {"Office > Writing > Pens"}
    assert category_key(MOVIE, "genre") == {"Animation", "Comedy"}
    assert path_at_level("Office > Writing > Pens", "l2") == {"Office > Writing"}
    assert path_at_level("Movies > Comedy", "genre") == {"Comedy"}
    assert path_at_level("", "leaf") == frozenset()
    with pytest.raises(ValueError, match="unknown category level"):
        category_key(PEN, "l9")


def test_category_hit_at_k_hand_computed() -> None:
    ranked = [frozenset({"A"}), frozenset({"B"}), frozenset({"C"})]
    assert category_hit_at_k(ranked, frozenset({"B"}), 2) == 1.0
    assert category_hit_at_k(ranked, frozenset({"C"}), 2) == 0.0
    assert category_hit_at_k(ranked, frozenset({"C"}), 50) == 1.0  # K larger than the list
    assert category_hit_at_k([], frozenset({"A"}), 10) == 0.0  # no tags
    assert category_hit_at_k(ranked, frozenset(), 10) == 0.0  # target without a category
    assert category_hit_at_k([frozenset({"X", "Comedy"})], frozenset({"Animation", "Comedy"}), 1) == 1.0


def test_item_hit_and_ndcg_hand_computed() -> None:
    ranked = ["a", "b", "b", "c", "d"]
    assert top_k_distinct(ranked, 3) == ["a", "b", "c"]  # duplicates do not use up K
    assert hit_at_k(ranked, "c", 3) == 1.0 and hit_at_k(ranked, "d", 3) == 0.0
    assert ndcg_at_k(ranked, "a", 3) == 1.0
    assert ndcg_at_k(ranked, "c", 3) == pytest.approx(1 / math.log2(4))
    assert ndcg_at_k(ranked, "d", 3) == 0.0
    assert hit_at_k([], "a", 10) == 0.0 and ndcg_at_k([], "a", 10) == 0.0
    assert hit_at_k(ranked, "d", 10_000) == 1.0  # K larger than the catalogue


def test_interleave_round_robin_dedupes_and_excludes() -> None:
    lists = [["a", "b", "c"], ["b", "d"], ["e"]]
    assert interleave(lists, 10) == ["a", "b", "e", "d", "c"]
    assert interleave(lists, 2) == ["a", "b"]
    assert interleave(lists, 10, exclude={"a", "e"}) == ["b", "d", "c"]
    assert interleave([], 5) == []


def test_new_interest() -> None:
    other = Item(item_id="x", title="x", category_path=("Office", "Writing", "Markers"))
    assert not is_new_interest([other], PEN, "l2")  # same L2
    assert is_new_interest([other], PEN, "leaf")  # different leaf
    assert is_new_interest([], PEN, "l2")  # empty history: everything is new


def test_diversity_hand_computed() -> None:
    assert mean_pairwise_cosine_distance(np.array([[1.0, 0.0]])) == 0.0
    orthogonal = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert mean_pairwise_cosine_distance(orthogonal) == pytest.approx(1.0)
    three = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # distances 0, 2, 2
    assert mean_pairwise_cosine_distance(three) == pytest.approx(4 / 3)


def test_exclusive_recall_hand_computed() -> None:
    llm = [True, True, False, True]
    channels = [[True, False, False, False], [False, False, True, False]]
    share, of_hits = exclusive_recall(llm, channels)
    assert share == pytest.approx(2 / 4) and of_hits == pytest.approx(2 / 3)
    assert exclusive_recall([], []) == (0.0, 0.0)
    assert exclusive_recall([False, False], [[True, True]]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        exclusive_recall([True], [[True, False]])


def test_answer_concentration_sees_the_same_answer_for_every_user() -> None:
    collapsed = answer_concentration([["Pencils", "Pencils", "Mailers"], ["Pencils"], ["Pencils", "Paper"]])
    assert collapsed == {"distinct_categories": 3, "top_category": "Pencils", "top_category_user_share": 1.0}
    varied = answer_concentration([["A", "B"], ["C"], ["D", "A"], ["E"]])
    assert varied["distinct_categories"] == 5 and varied["top_category"] == "A" and varied["top_category_user_share"] == 0.5
    assert answer_concentration([])["distinct_categories"] == 0
