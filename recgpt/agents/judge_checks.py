"""What the judge decides by code before it asks an LLM: the literal defects, and the catalogue's evidence.

A 0.5B–1.5B judge grades every target alike (issue 33: F1 0 on both targets, every positive and negative Bad). Part
of its rubric is not a matter of taste and needs no model: a tag carrying title filler ("x inches ... pack of") or a
word cut mid-way is not valid; an explanation that breaks off, loops or recites its own prompt is not clear; one that
restates the title tells nothing; a price, a delivery promise or a warranty is a fact no catalogue record states. The
Agent-as-a-Judge treats these checks as tools: a dimension a check fails is graded negative with the check's reason,
and its LLM call is skipped (on two cores, that call is the scarce thing). Everything a check cannot see (does this
fit *this* user?) stays with the LLM, which now also reads one line of evidence the small model cannot compute from a
long context: how many of the user's past items lie in the target's category.

The same detectors count defects in `recgpt eval-readability`, so the report and the judge agree on what a defect is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from recgpt.agents.explainer import (
    adds_nothing,
    echoed_prompt_words,
    has_size_residue,
    invented_commerce_claim,
    repeated_phrase,
)
from recgpt.agents.planner import pastes_path
from recgpt.agents.words import is_unknown
from recgpt.data import Dataset
from recgpt.text_fields import DANGLING_WORDS, FILLER_WORDS, GENERIC_WORDS, ends_on_a_fragment, words_of

FILLER_PHRASES = (re.compile(r"\bpacks?\s+of\b"), re.compile(r"\b(box|set|case|bag|ream)\s+of\s*$"),
                  re.compile(r"\b(colors?|assorted|sheets|pieces|refills?|count)\s+packs?\b"),
                  re.compile(r"\bper\s+(pack|box|case)\b"))
ENDING_FILLER = DANGLING_WORDS | {"and", "&", "with", "for", "of", "or", "in", "to", "by", "the", "a", "an"}
_SPACES = re.compile(r"\s+")
_EDGES = " ,.:;-\"'"

def normalise(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip(_EDGES)


# --- tags ------------------------------------------------------------------------------------------------------------

def has_filler(tag: str) -> bool:
    """Size and pack residue of titles ("x inches", "pack of"), a dangling last word ("for"), or a word repeated."""
    text = normalise(tag)
    words = text.split()
    if not words:
        return False
    if any(w in FILLER_WORDS for w in words) or any(p.search(text) for p in FILLER_PHRASES):
        return True
    if words[-1] in ENDING_FILLER:
        return True
    return any(a == b for a, b in zip(words, words[1:])) or max(Counter(words).values()) >= 3


def is_cut_word(word: str, known: frozenset[str]) -> bool:
    """A word cut to one letter ("gel p") or unknown to both the catalogue and English ("protecters"); generic,
    filler and dangling words are never cut."""
    if word in GENERIC_WORDS or word in ENDING_FILLER or word in FILLER_WORDS:
        return False
    return len(word) == 1 or bool(known) and is_unknown(word, known)


def cut_words(tag: str, known: frozenset[str]) -> list[str]:
    """Words of `tag` cut or misspelled (`is_cut_word`); numbers and model codes are the catalogue's own business."""
    return [w for w in words_of(tag) if (w.isalpha() or "-" in w or "'" in w) and is_cut_word(w, known)]


def tag_check_failures(text: str, known: frozenset[str]) -> dict[str, str]:
    """Dimension -> why code fails it, for one tag or a tag set joined by ';' (a reward sample: each tag is checked on
    its own). Empty: nothing literal is wrong, and the LLM grades every dimension."""
    fails: dict[str, str] = {}
    for tag in (part.strip() for part in text.split(";")):
        if pastes_path(tag):
            fails.setdefault("specificity", f"code check: {tag!r} pastes a category path instead of naming a product need")
        if has_filler(tag):
            fails.setdefault("validity", f"code check: {tag!r} carries title filler (sizes, pack counts or a dangling word)")
        elif cut := cut_words(tag, known):
            fails.setdefault("validity", f"code check: {tag!r} has a cut or misspelled word ({cut[0]!r})")
    return fails


# --- explanations ----------------------------------------------------------------------------------------------------

def is_unfinished(text: str) -> bool:
    """Not a closed sentence: no final '.', '!' or '?', a dangling last word, or a one-letter stub ("pack of r.")."""
    stripped = text.strip()
    if not stripped or stripped[-1] not in ".!?":
        return True
    last = stripped.rstrip(".!?").split()[-1:] or [""]  # the whole last token: "R400" is a model number, not "r"
    stub = last[0].strip("\"'()").lower()
    return ends_on_a_fragment(stripped) or (len(stub) == 1 and stub.isalpha() and stub not in {"a", "i"})


def explanation_check_failures(text: str, title: str, category: str) -> dict[str, str]:
    """Dimension -> why code fails it, for one explanation of one item."""
    fails: dict[str, str] = {}
    if (echo := echoed_prompt_words(text)) is not None:
        fails["clarity"] = f"code check: the explanation recites the writer's instructions ({echo!r})"
    elif (loop := repeated_phrase(text)) is not None:
        fails["clarity"] = f"code check: the explanation repeats itself ({loop!r})"
    elif is_unfinished(text):
        fails["clarity"] = "code check: the explanation breaks off before the sentence ends"
    elif has_size_residue(text):
        fails["clarity"] = "code check: the explanation carries a title's size residue (a lone 'x')"
    if adds_nothing(text, title, category):
        fails["informativeness"] = "code check: the explanation restates the title and adds nothing"
    if (claim := invented_commerce_claim(text, title)) is not None:
        fails["factuality"] = f"code check: the explanation states a price, shipping or warranty fact no record gives ({claim!r})"
    return fails


# --- evidence --------------------------------------------------------------------------------------------------------

def in_category(path: Sequence[str], genres: Iterable[str], category: str, depth: int = 2) -> bool:
    """Whether an item (its path, or MovieLens genres) lies in `category`, compared at its first `depth` levels."""
    levels = [part.strip() for part in category.split(">") if part.strip()]
    if not levels:
        return False
    if not path:
        return levels[-1] in set(genres)
    want = levels[:depth]
    return list(path[: len(want)]) == want


def history_evidence(dataset: Dataset, history_item_ids: Sequence[str], category: str) -> str:
    """One line the judge reads: how many of the user's past items lie in the target's category (at its second level,
    the level a shopper's interest is measured at). Empty when there is no history or no category."""
    if not category or not history_item_ids:
        return ""
    items = [dataset.items[i] for i in history_item_ids if i in dataset.items]
    if not items:
        return ""
    hits = sum(in_category(item.category_path, item.genres, category) for item in items)
    short = " > ".join(part.strip() for part in category.split(">")[:2])
    return f"Catalogue evidence: {hits} of the user's {len(items)} past items lie in {short}."
