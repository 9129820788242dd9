"""ROUGE-L diversity, distinct-n and the in-batch shuffling labeller on hand-computed cases."""

from __future__ import annotations

import pytest

from recgpt.eval.judge_labels import binary_scores, derangement, shuffle_label
from recgpt.eval.text_metrics import distinct_n, pairwise_diversity, rouge_l


def test_rouge_l_hand_computed() -> None:
    # LCS("the cat sat on the mat", "the cat lay on a mat") = the cat on mat = 4; P = R = 4/6
    assert rouge_l("the cat sat on the mat", "the cat lay on a mat") == pytest.approx(4 / 6)
    assert rouge_l("a b c", "a b c") == pytest.approx(1.0)
    assert rouge_l("a b c", "x y z") == 0.0
    assert rouge_l("", "a b") == 0.0


def test_pairwise_diversity_hand_computed() -> None:
    texts = ["a b c d", "a b x y", "p q r s"]
    # pairs: (1,2) LCS 2 -> F1 0.5; (1,3) 0; (2,3) 0 -> mean 1/6
    assert pairwise_diversity(texts) == pytest.approx(1 - 0.5 / 3)
    assert pairwise_diversity(["same words here", "same words here"]) == pytest.approx(0.0)
    assert pairwise_diversity(["only one"]) is None and pairwise_diversity([]) is None


def test_distinct_2() -> None:
    # bigrams: (a b)(b a)(a b) + (a b) -> 4 bigrams, 2 distinct
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)
    assert distinct_n(["one"], 2) == 0.0


@pytest.mark.parametrize("n", [2, 3, 5, 17])
def test_derangement_has_no_fixed_point_and_is_seeded(n: int) -> None:
    perm = derangement(n, seed=3)
    assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))
    assert perm == derangement(n, seed=3)
    with pytest.raises(ValueError):
        derangement(1, seed=0)


def test_shuffle_label_moves_every_payload_to_another_user() -> None:
    positives = [("u1", "gel pens"), ("u2", "desk lamp"), ("u3", "printer paper"), ("u4", "stapler")]
    rows = shuffle_label(positives, seed=0)
    pos, neg = [r for r in rows if r.label], [r for r in rows if not r.label]
    assert len(pos) == 4 and all(r.owner == r.context_user for r in pos)
    assert len(neg) == 4 and all(r.owner != r.context_user for r in neg)
    assert sorted(r.payload for r in neg) == sorted(p for _, p in positives)
    assert sorted(r.context_user for r in neg) == ["u1", "u2", "u3", "u4"]


def test_shuffle_label_drops_negatives_that_are_right_for_their_new_user() -> None:
    positives = [("u1", "pens"), ("u2", "pens"), ("u3", "lamp")]
    rows = shuffle_label(positives, seed=1, still_valid=lambda user, payload: payload == "pens" and user in {"u1", "u2"})
    assert all(not (r.payload == "pens" and r.context_user in {"u1", "u2"}) for r in rows if not r.label)
    assert shuffle_label([("u1", "x")], seed=0) == shuffle_label([("u1", "x")], seed=5)  # one user: positives only


def test_binary_scores_hand_computed() -> None:
    labels = [True, True, False, False, True]
    preds = [True, False, True, False, True]
    s = binary_scores(labels, preds)  # tp 2, fp 1, fn 1, tn 1
    assert s["accuracy"] == pytest.approx(3 / 5) and s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(2 / 3)
    assert binary_scores([False], [False])["f1"] == 0.0
