"""The rule judge of reward data: grades by the categories of the cut's next interactions."""

from __future__ import annotations

import json

from recgpt.tools.retrieval.grounding import CategoryVocabulary
from recgpt.training.reward_data import rule_agreement
from recgpt.training.rule_judge import rule_grade

PATHS = ["Office > Paper > Notebooks", "Office > Paper > Envelopes", "Office > Pens > Gel Pens", "Tech > Phones > Cords"]


def _answer(*labels: str) -> str:
    return json.dumps({"tags": [{"category": label, "tag": f"nice {label.split(' > ')[-1].lower()}"} for label in labels]})


def test_rule_grades_leaf_department_and_miss() -> None:
    vocabulary = CategoryVocabulary("leaf", tuple(PATHS), tuple(PATHS))
    future = ["Office > Paper > Notebooks"]
    assert rule_grade(_answer("Tech > Phones > Cords", "Office > Paper > Notebooks"), future, vocabulary) == "Superior"
    assert rule_grade(_answer("Office > Paper > Envelopes"), future, vocabulary) == "Average"
    assert rule_grade(_answer("Office > Pens > Gel Pens", "Tech > Phones > Cords"), future, vocabulary) == "Bad"
    assert rule_grade(_answer("Not A Label"), future, vocabulary) == "Bad"  # outside the vocabulary names nothing
    assert rule_grade('{"tags": []}', future, vocabulary) == "Bad"
    assert rule_grade(_answer("Office > Paper > Notebooks"), [], vocabulary) == "Bad"  # no future, no credit


def test_rule_agreement_counts_and_separation() -> None:
    pairs = [("Superior", "Superior"), ("Superior", "Bad"), ("Bad", "Bad"), ("Average", "Average")]
    summary = rule_agreement(pairs)
    assert summary["exact"] == 0.75 and summary["rule_grades"] == {"Superior": 1, "Average": 1, "Bad": 2}
    assert summary["judge_superior_rate_when_rule_superior"] == 1.0 and summary["judge_superior_rate_when_rule_bad"] == 0.5
    assert rule_agreement([])["exact"] is None
