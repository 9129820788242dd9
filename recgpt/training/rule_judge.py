"""A rule judge for reward data: grades an expert answer by the categories of the cut's next interactions.

Why it exists: the issue's fallback when the served LLM judge cannot tell a user's answer from another user's
(measured in `reports/explain-judge-office-test.md`). The rule is honest for training because it reads only a
*training* cut's future (the interactions after the prompt's history, all inside the training prefix), never a
validation or test target.

    Superior  a tag names the leaf category of one of the next interactions
    Average   a tag names a category in the same level-2 department as one of them
    Bad       neither (or no tag names a catalogue category)
"""

from __future__ import annotations

from collections.abc import Iterable

from recgpt.eval.metrics import path_at_level
from recgpt.tools.retrieval.grounding import CategoryVocabulary
from recgpt.training.grpo_rewards import parse_categories

RULE_GRADES = ("Superior", "Average", "Bad")


def rule_grade(answer: str, future_paths: Iterable[str], vocabulary: CategoryVocabulary) -> str:
    """The grade of one grounded expert answer (JSON text) against the full category paths of the next interactions."""
    named = [vocabulary.path_of(label) for label in parse_categories(answer) if label]
    paths = [p for p in named if p]
    targets = list(future_paths)
    leaves = set().union(*(path_at_level(t, "leaf") for t in targets)) if targets else set()
    departments = set().union(*(path_at_level(t, "l2") for t in targets)) if targets else set()
    if any(path_at_level(p, "leaf") & leaves for p in paths):
        return "Superior"
    if any(path_at_level(p, "l2") & departments for p in paths):
        return "Average"
    return "Bad"
