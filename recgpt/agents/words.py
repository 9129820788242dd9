"""Which words a shopper-facing text may use: those this shop's catalogue uses, or English ones.

The persona guard, the final tags' tidying and the readability audit (`recgpt.eval.readability`) share these, so a
guard and the count of what it guards cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from spellchecker import SpellChecker

from recgpt.data import Dataset
from recgpt.text_fields import FILLER_WORDS, tidy_tag, words_of


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
    if not parts or len(word) <= 3:
        return False
    *heads, last = parts  # "pre-printed", "e-reader": a prefix before the hyphen need not be a word of its own
    return all(h in PREFIXES or _known_spelling(h) for h in heads) and _known_spelling(last)


PREFIXES = frozenset({"pre", "re", "non", "multi", "co", "e", "anti", "semi", "sub", "mini", "micro", "ultra", "x",
                      "inter", "mid", "over", "under", "post", "self", "tri", "bi", "uni", "de", "un"})


def _known_spelling(part: str) -> bool:
    return any(not _english().unknown([v]) for v in spellings(part))


BRITISH = (("isers", "izers"), ("iser", "izer"), ("ise", "ize"), ("ised", "ized"), ("ising", "izing"),
           ("isation", "ization"), ("our", "or"), ("ours", "ors"), ("yse", "yze"), ("tre", "ter"), ("ogue", "og"))
"""British endings and their American spellings: the word list is American ("colour", "organisers" are not in it)."""


def spellings(word: str) -> list[str]:
    return [word] + [word[: -len(gb)] + us for gb, us in BRITISH if word.endswith(gb)]


def is_unknown(word: str, known: frozenset[str]) -> bool:
    """A word neither this catalogue nor English uses: cut ("laminat") or misspelled ("protecters", "gelpp")."""
    return word not in known and not is_english(word)


def tidy_words(text: str, known: frozenset[str], max_words: int, max_chars: int | None = None) -> str:
    """`text_fields.tidy_tag` (title filler, stubs, repeats, a dangling end), and then, given the catalogue's `known`
    words, without a word neither the catalogue nor English uses ("fusan x x inch magnetic t-disk deck v" becomes
    "magnetic t-disk deck"); '' when nothing is left."""
    words = tidy_tag(text, max_words=max_words, max_chars=max_chars)
    if not known:
        return words
    kept = " ".join(w for w in words.split() if not drops(w, known))
    return tidy_tag(kept, max_words=max_words)  # a dropped word may leave a dangling "with"


def drops(token: str, known: frozenset[str]) -> bool:
    """Whether `tidy_words` drops `token`: a word (letters, inner hyphens, a possessive "'s") neither the catalogue nor
    English uses ("fusan", "Ashima's"); tokens with digits or other signs ("4-color", "&") stay."""
    word = token.lower().strip(".,;:!?")
    base = word[:-2] if word.endswith("'s") else word
    return bool(base) and all(c.isalpha() or c == "-" for c in base) and is_unknown(base, known)


def content_words(text: str) -> frozenset[str]:
    """The words of a tag that say what it is: its lower-cased words without title filler ("x", "inch", "pack")."""
    return frozenset(words_of(text)) - FILLER_WORDS


def near_duplicate(a: str, b: str) -> bool:
    """Whether two tags read as the same to a shopper: equal words, one's words inside the other's ("Terminator" and
    "Terminator 2"; "photo paper" and "photo paper inch x inches color paper ..."), or word overlap (Jaccard) >= .6.
    The arbiter's guard (`agents.arbiter.distinct_words`) and the readability audit share it."""
    mine, other = content_words(a), content_words(b)
    if not mine or not other:
        return False
    return mine <= other or other <= mine or len(mine & other) / len(mine | other) >= 0.6


def near_duplicates(tags: Sequence[str]) -> list[bool]:
    """For each tag of one user: whether it repeats an earlier one (`near_duplicate`)."""
    return [any(near_duplicate(tag, earlier) for earlier in tags[:n]) for n, tag in enumerate(tags)]
