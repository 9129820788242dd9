"""Reward functions on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recgpt.training.rewards import (
    Gates,
    IdfDiversity,
    SumWeights,
    TagRewardParts,
    crs_reward,
    explanation_reward,
    length_score,
    r_acc,
    r_div,
    r_len,
    sum_reward,
)


def test_r_acc_is_recall_of_target_categories() -> None:
    tags = [{"Paper"}, {"Pens"}, {"Paper"}]
    assert r_acc(tags, {"Paper", "Desks"}) == 0.5
    assert r_acc(tags, {"Paper", "Pens"}) == 1.0
    assert r_acc([], {"Paper"}) == 0.0 and r_acc(tags, set()) == 0.0


def test_r_div() -> None:
    assert r_div(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1.0)
    assert r_div(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])) == pytest.approx(2 / 3)
    assert r_div(np.array([[1.0, 0.0]])) == 0.0


@pytest.mark.parametrize(("words", "score"), [(1, 0.0), (3, 0.0), (4, 0.5), (5, 0.5), (6, 1.0), (11, 1.0), (12, 0.5), (13, 0.5), (14, 0.0)])
def test_length_score_bands(words: int, score: float) -> None:
    vocabulary = ["gel", "pens", "black", "ink", "fine", "point", "pack", "smooth", "writing", "office", "school", "home", "retractable",
                  "quick"]
    assert length_score(" ".join(vocabulary[:words])) == score


def test_r_len_averages_tags() -> None:
    assert r_len(["aa bb cc dd ee ff", "aa bb cc dd"]) == 0.75 and r_len([]) == 0.0


def test_filler_does_not_lengthen_a_tag() -> None:
    """What the first Office CRS run learned to write to reach the 6-11 band: fragments, repeats and sizes."""
    from recgpt.training.rewards import tag_words

    assert tag_words("board- m- m- m- white- board") == ["board", "white"]
    assert tag_words("Photo paper- 8.5 x 11 inch, Photo Paper") == ["photo", "paper", "inch"]
    assert length_score("magnetic- m- m- m- m- m- m- m- m- m- m- m- m- m- m- m- m- m-") == 0.0
    assert length_score("l- l- l- ultra-high- resolution photo paper") == 0.5  # ultra, high, resolution, photo, paper
    assert length_score("ultra fine point black gel pens for office") == 1.0


def test_crs_gates_and_sum_baseline() -> None:
    good = TagRewardParts(acc=0.4, align=0.9, div=0.5, len=1.0)
    assert crs_reward(good) == 0.4
    for bad in (TagRewardParts(0.4, 0.49, 0.5, 1.0), TagRewardParts(0.4, 0.9, 0.1, 1.0), TagRewardParts(0.4, 0.9, 0.5, 0.4)):
        assert crs_reward(bad) == 0.0
    assert crs_reward(TagRewardParts(0.4, 0.5, 0.2, 0.5), Gates(0.5, 0.2, 0.5)) == 0.4  # thresholds are inclusive
    # SUM lets secondary rewards buy back lost accuracy; CRS does not
    assert sum_reward(TagRewardParts(0.0, 1.0, 1.0, 1.0)) > sum_reward(TagRewardParts(0.4, 0.0, 0.0, 0.0))
    assert crs_reward(TagRewardParts(0.0, 1.0, 1.0, 1.0)) < crs_reward(good)
    assert sum_reward(good, SumWeights(1, 0, 0, 0)) == 0.4


def test_idf_diversity_hand_computed() -> None:
    d = IdfDiversity(window=2)
    assert d.score("anything") == 1.0  # empty window
    d.push("great pens")
    # N=1: 'great' df 1 -> ln(2/2)=0; 'gift' df 0 -> ln 2 -> mean (0 + ln2) / (2 * ln2) = 0.5
    assert d.score("great gift") == pytest.approx(0.5)
    d.push("great desk")
    d.push("new lamp")  # window 2: 'great pens' evicted
    # N=2: 'great' df 1 -> ln(3/2); 'pens' df 0 -> ln 3 -> mean / ln 3
    assert d.score("great pens") == pytest.approx((math.log(1.5) + math.log(3)) / (2 * math.log(3)))
    assert d.score("") == 0.0


def test_explanation_reward_gate() -> None:
    assert explanation_reward(0.8, 0.31, tau=0.3) == 0.8 and explanation_reward(0.8, 0.29, tau=0.3) == 0.0


def test_rank_reward_is_the_ndcg_gain_of_the_best_target_within_the_depth() -> None:
    from recgpt.training.rewards import r_rank

    assert r_rank(["a", "b", "c"], {"a"}, 10) == 1.0
    assert abs(r_rank(["a", "b", "c"], {"c", "z"}, 10) - 0.5) < 1e-12  # rank 3: 1/log2(4)
    assert r_rank(["a", "b", "c"], {"c"}, 2) == 0.0  # beyond the depth
    assert r_rank([], {"a"}, 5) == 0.0 and r_rank(["a"], set(), 5) == 0.0


def test_dense_accuracy_separates_answers_that_the_sparse_one_ties() -> None:
    from recgpt.training.rewards import AccuracyMix, zero_std_share

    near = TagRewardParts(acc=0.0, align=1.0, div=0.5, len=1.0, leaf=0.0, rank=0.3)
    far = TagRewardParts(acc=0.0, align=1.0, div=0.5, len=1.0, leaf=0.0, rank=0.0)
    assert crs_reward(near) == crs_reward(far) == 0.0  # sparse: a tie, zero advantage
    dense = AccuracyMix.dense()
    assert crs_reward(near, mix=dense) > crs_reward(far, mix=dense)
    assert abs(crs_reward(TagRewardParts(1.0, 1.0, 0.5, 1.0, leaf=1.0, rank=1.0), mix=dense) - 1.0) < 1e-12  # weights sum to 1
    assert crs_reward(TagRewardParts(1.0, 1.0, 0.0, 1.0, leaf=1.0, rank=1.0), mix=dense) == 0.0  # the gates still gate
    assert sum_reward(near, mix=dense) > sum_reward(far, mix=dense)
    assert zero_std_share([[0.0, 0.0, 0.0], [0.0, 0.2], [1.0], []]) == 0.5  # single-answer groups left out
    assert zero_std_share([]) == 0.0
