"""How often a tag is pasted from the prompt instead of written: category paths, category names, titles.

A tag is meant to be a product intent in the shopper's words. A small model often copies what the
context shows instead. These checks are case- and whitespace-insensitive and deliberately literal, so
that they count copies, not similarity:

- **path**: the tag contains a path separator ('>') or equals two or more consecutive levels of a
  catalogue category path (joined by '>' or ',');
- **category name**: the tag equals one level's name of some catalogue category path (e.g. 'Rollerball
  Pens'). Such a tag can still be a fine intent, which is why it is counted apart from paths;
- **title**: the tag has at least 3 words and occurs verbatim inside a title from the user's history.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from recgpt.data import Dataset

_SPACES = re.compile(r"\s+")
_EDGES = " ,.:;-\"'"


def normalise(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip(_EDGES)


@dataclass(frozen=True)
class CategoryVocabulary:
    names: frozenset[str]
    subpaths: frozenset[str]

    @classmethod
    def of(cls, dataset: Dataset) -> CategoryVocabulary:
        names: set[str] = set()
        subpaths: set[str] = set()
        for item in dataset.items.values():
            levels = [normalise(level) for level in (*item.category_path, *item.genres) if level.strip()]
            names.update(levels)
            for start in range(len(levels)):
                for end in range(start + 2, len(levels) + 1):
                    subpaths.add(" > ".join(levels[start:end]))
        return cls(frozenset(names), frozenset(subpaths))


def copy_kind(tag: str, vocabulary: CategoryVocabulary, history_titles: Iterable[str]) -> str | None:
    """'path', 'category_name', 'title' or None (the tag is the model's own words)."""
    text = normalise(tag)
    as_path = " > ".join(part.strip(_EDGES) for part in re.split(r"\s*[>,]\s*", text) if part.strip(_EDGES))
    if ">" in tag or as_path in vocabulary.subpaths:
        return "path"
    if text in vocabulary.names:
        return "category_name"
    if len(text.split()) >= 3 and any(text in normalise(title) for title in history_titles):
        return "title"
    return None


def copy_shares(tags_by_user: dict[str, list[str]], dataset: Dataset, split: str) -> dict[str, float]:
    """Share of all tags of each copy kind (and of any kind), over users' tags and their own history titles."""
    vocabulary = CategoryVocabulary.of(dataset)
    counts = {"path": 0, "category_name": 0, "title": 0}
    total = 0
    for user_id, tags in tags_by_user.items():
        titles = [item.title for item in dataset.items_of(dataset.example(user_id, split).history)]
        for tag in tags:
            total += 1
            kind = copy_kind(tag, vocabulary, titles)
            if kind:
                counts[kind] += 1
    shares = {kind: count / total if total else 0.0 for kind, count in counts.items()}
    shares["any"] = sum(counts.values()) / total if total else 0.0
    shares["tags"] = float(total)
    return shares
