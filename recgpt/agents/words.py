"""Which words a shopper-facing text may use: those this shop's catalogue uses, or English ones.

The persona guard, the final tags' tidying and the readability audit (`recgpt.eval.readability`) share these, so a
guard and the count of what it guards cannot disagree.
"""

from __future__ import annotations

from functools import lru_cache

from spellchecker import SpellChecker

from recgpt.data import Dataset


def known_words(dataset: Dataset) -> frozenset[str]:
    """Words the catalogue's titles, category levels and genres use at least twice (one use may be a typo)."""
    return dataset.derived("known_words", lambda: frozenset(w for w, n in dataset.word_counts().items() if n >= 2))


@lru_cache(maxsize=1)
def _english() -> SpellChecker:
    return SpellChecker(language="en")  # its word list ships in the wheel: nothing is downloaded


def is_english(word: str) -> bool:
    """Every part of `word` (split at hyphens) is in pyspellchecker's English list. Words of three letters or fewer
    are not vouched for: such a stub may be where a longer word was cut ("gr" of "grey")."""
    parts = [p for p in word.split("-") if p]
    return bool(parts) and len(word) > 3 and not _english().unknown(parts)


def is_unknown(word: str, known: frozenset[str]) -> bool:
    """A word neither this catalogue nor English uses: cut ("laminat") or misspelled ("protecters", "gelpp")."""
    return word not in known and not is_english(word)
