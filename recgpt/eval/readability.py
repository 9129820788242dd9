"""What a shopper reads, checked by code: the defects `recgpt eval-readability` counts in personas, tags, explanations
and shown items.

Every detector is literal and deliberately simple, so that a count means what it says and a unit test can pin each
one with the real bad outputs that motivated it (the demo of issue 33):

- persona named after an agent role ("Global Planner"), or after a person ("Glen"), or duplicating another persona's
  name or focus, or copying the prompt's own example label ("teacher stocking a classroom"); a name or focus that
  pastes a category path, or carries title filler or words neither the shop nor
  English uses ("fusan x x inch magnetic t-disk deck v");
- tag with title filler (size and pack residue: "x inches", "pack of", a dangling "for"/"of"/"with"), cut off or
  misspelled mid-word ("black and gr"), or a near-duplicate of an earlier tag of the same user;
- explanation that echoes the prompt's own words (tone, audience, rhetorical device, guideline, "tie it to"...), loops
  ("coupon coupon coupon ..."), carries a title's size residue (a lone "x"), does not end as a sentence ("... pack of r."), or adds nothing to the item's title
  ("... because it's called a desktop label printer.");
- item shown under a tag whose category it does not lie in, or shown twice in one user's list.

Words are checked against the catalogue's own vocabulary (titles and category names), so "misspelled" means "a word
no title or category of this catalogue uses", not an English dictionary's opinion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from recgpt.agents.explainer import adds_nothing, echoed_prompt_words, has_size_residue, repeated_phrase
from recgpt.agents.judge_checks import ENDING_FILLER, has_filler, is_cut_word, is_unfinished
from recgpt.agents.planner import copies_an_example, is_person_name, is_role_name, name_key, pastes_path, repeats_focus
from recgpt.agents.words import known_words, near_duplicates
from recgpt.data import Dataset
from recgpt.eval.tag_copies import CategoryVocabulary, copy_kind, normalise
from recgpt.text_fields import FILLER_WORDS, GENERIC_WORDS, words_of

PERSONA_DEFECTS = ("persona_role_name", "persona_copied_example", "persona_person_name", "persona_duplicate",
                   "persona_path_focus", "persona_filler_or_misspelled")
TAG_DEFECTS = ("tag_filler", "tag_cut_or_misspelled", "tag_near_duplicate")
EXPLANATION_DEFECTS = ("explanation_echo", "explanation_loop", "explanation_size_residue", "explanation_unfinished",
                       "explanation_adds_nothing")
ITEM_DEFECTS = ("item_off_category", "item_repeated")
DEFECTS = PERSONA_DEFECTS + TAG_DEFECTS + EXPLANATION_DEFECTS + ITEM_DEFECTS


@dataclass(frozen=True)
class Lexicon:
    """The catalogue's words (titles and category levels) with their counts, and its category vocabulary."""

    counts: Counter[str]
    categories: CategoryVocabulary

    @classmethod
    def of(cls, dataset: Dataset) -> Lexicon:
        return cls(counts=dataset.word_counts(), categories=CategoryVocabulary.of(dataset), known=known_words(dataset))

    known: frozenset[str] = frozenset()

    def is_cut(self, word: str) -> bool:
        """A word that neither the catalogue (twice) nor an English dictionary uses ("protecters", "laminat"), or a
        short stub that a frequent word starts with ("gr" of "grey"). A real word new to this catalogue ("charging",
        "stapled") is odd perhaps, but neither cut nor misspelled."""
        if word in GENERIC_WORDS or word in ENDING_FILLER or word in FILLER_WORDS:
            return False
        if is_cut_word(word, self.known):  # the judge's own check: one letter left, or neither shop nor English
            return True
        return len(word) <= 3 and self.counts[word] < 5 and any(
            k.startswith(word) and len(k) > len(word) + 1 and self.counts[k] >= 20 for k in self.known)


# --- personas ----------------------------------------------------------------------------------------------------

def persona_defects(personas: Sequence[tuple[str, str]], lexicon: Lexicon) -> list[list[str]]:
    """For each (name, focus) of one user's personas, the defects it has. A duplicate repeats an earlier persona's
    name or its focus (`planner.repeats_focus`: the guard's own test, so the two cannot drift apart)."""
    out: list[list[str]] = []
    seen_names: list[str] = []
    seen_foci: list[str] = []
    for name, focus in personas:
        found = []
        key = name_key(normalise(name))  # "Comedy shopper (2)" repeats "Comedy shopper"
        if is_role_name(name):
            found.append("persona_role_name")
        elif copies_an_example(name):
            found.append("persona_copied_example")
        elif is_person_name(name, lexicon.known):
            found.append("persona_person_name")
        if key in seen_names or repeats_focus(focus, seen_foci):
            found.append("persona_duplicate")
        if pastes_path(name) or pastes_path(focus) or copy_kind(focus, lexicon.categories, ()) == "path":
            found.append("persona_path_focus")
        elif any(has_filler(text) or is_cut_or_misspelled(text, lexicon)
                 for text in ((focus,) if found else (name, focus))):  # a person's name is counted once, as one
            found.append("persona_filler_or_misspelled")  # "fusan x x inch magnetic t-disk deck v"
        seen_names.append(key)
        seen_foci.append(focus)
        out.append(found)
    return out


# --- tags --------------------------------------------------------------------------------------------------------

def is_cut_or_misspelled(tag: str, lexicon: Lexicon) -> bool:
    return any(lexicon.is_cut(w) for w in words_of(tag) if w.isalpha() or "-" in w or "'" in w)


def tag_defects(tags: Sequence[str], lexicon: Lexicon) -> list[list[str]]:
    dup = near_duplicates(tags)
    return [[name for name, bad in (("tag_filler", has_filler(tag)),
                                    ("tag_cut_or_misspelled", is_cut_or_misspelled(tag, lexicon)),
                                    ("tag_near_duplicate", d)) if bad]
            for tag, d in zip(tags, dup)]


# --- explanations --------------------------------------------------------------------------------------------------

def echoes_prompt(text: str) -> bool:
    return echoed_prompt_words(text) is not None  # the writer's own check, so both agree on what an echo is


def explanation_defects(text: str, title: str, category: str) -> list[str]:
    return [name for name, bad in (("explanation_echo", echoes_prompt(text)),
                                   ("explanation_loop", repeated_phrase(text) is not None),
                                   ("explanation_size_residue", has_size_residue(text)),
                                   ("explanation_unfinished", is_unfinished(text)),
                                   ("explanation_adds_nothing", adds_nothing(text, title, category))) if bad]


# --- shown items ---------------------------------------------------------------------------------------------------

def lies_in(item_category: str, item_genres: Iterable[str], path: str | None) -> bool:
    """Whether an item lies in a tag's category: its path is the category or below it, or (MovieLens) the category
    is one of its genres."""
    if not path:
        return False
    return item_category == path or item_category.startswith(f"{path} > ") or path in set(item_genres)


def item_defects(shown: Sequence[tuple[str, str | None]], dataset: Dataset) -> list[list[str]]:
    """For each (item_id, tag category) shown to one user, in order: off its tag's category, or shown before."""
    seen: set[str] = set()
    out = []
    for item_id, path in shown:
        item = dataset.items.get(item_id)
        found = []
        if item is None or not lies_in(item.category, item.genres, path):
            found.append("item_off_category")
        if item_id in seen:
            found.append("item_repeated")
        seen.add(item_id)
        out.append(found)
    return out
