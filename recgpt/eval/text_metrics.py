"""Explanation diversity: ROUGE-L (Google's `rouge-score`) and distinct-n.

diversity(texts) = 1 - mean over unordered pairs of ROUGE-L F1, computed among explanations of the
*same item* for different users/situations (RecGPT-V2: 0.631 for V1 templates, 0.677 with
meta-prompting). Fewer than two texts have no pairs: diversity is undefined (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from rouge_score import rouge_scorer, tokenize

_ROUGE_L = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
"""ROUGE-L without stemming: a plain, stateless object (its `score` keeps nothing between calls), made once at import."""


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 of two texts (symmetric); 0.0 when either has no tokens."""
    return float(_ROUGE_L.score(a, b)["rougeL"].fmeasure)


def pairwise_diversity(texts: Sequence[str]) -> float | None:
    """1 - mean pairwise ROUGE-L F1; None for fewer than two texts."""
    pairs = list(combinations(texts, 2))
    if not pairs:
        return None
    return 1.0 - sum(rouge_l(a, b) for a, b in pairs) / len(pairs)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over the texts (rouge-score's tokenizer: lowercase alphanumerics)."""
    grams = [tuple(tokens[i : i + n]) for t in texts for tokens in [tokenize.tokenize(t, None)] for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
