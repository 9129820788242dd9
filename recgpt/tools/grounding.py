"""Grounded tags: the catalogue's own category vocabulary, offered to the LLM as a server-enforced enum.

Why: a tag written as free text and mapped afterwards to its nearest category lands a small model's vague tag
("blue", "music") on an unrelated category. With grounding, every expert tag carries a category the model picks
from this vocabulary under the JSON schema (vLLM compiles the enum into the decoding grammar, so an invalid
category cannot be sampled), and retrieval searches inside that category.

Labels are what the model reads and writes: a category's last path component (short, few tokens); when two paths
share it, the parent is prefixed ('Paper / Labels'), then the whole path. `path_of` maps a label back to the
catalogue path. Levels:

- `leaf`: the tree's leaves, the items' full category paths that no other path extends (Office: 2xx; MovieLens:
  19 genres);
- `l2`: the first two levels (Office: 4x), likewise without inner nodes.

The catalogue list the prompt shows (`prompt_block`) is the same for every user, so it goes in front of the
per-user context and vLLM's prefix cache computes it once for all users.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from recgpt.data.dataset import Dataset

Level = Literal["leaf", "l2"]
LEVELS: tuple[str, ...] = ("leaf", "l2")
PATH_SEPARATOR = " > "


@dataclass(frozen=True)
class CategoryVocabulary:
    """The categories a grounded tag may name: labels (enum values) and the catalogue paths they stand for."""

    level: str
    labels: tuple[str, ...]
    paths: tuple[str, ...]
    _by_label: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.paths) or len(set(self.labels)) != len(self.labels):
            raise ValueError("a category vocabulary needs one unique label per path")
        self._by_label.update(zip(self.labels, self.paths))

    def __len__(self) -> int:
        return len(self.labels)

    def path_of(self, label: str) -> str | None:
        """The catalogue path a label names (None for a label outside the vocabulary)."""
        return self._by_label.get(label)

    def prompt_block(self) -> str:
        """The vocabulary as the prompt lists it: one line per parent path, its labels after a colon."""
        groups: dict[str, list[str]] = {}
        for label, path in zip(self.labels, self.paths):
            parent = PATH_SEPARATOR.join(path.split(PATH_SEPARATOR)[:-1]) or "(top level)"
            groups.setdefault(parent, []).append(label)
        return "\n".join(f"- {parent}: {' | '.join(labels)}" for parent, labels in groups.items())


def _paths(dataset: Dataset, level: str) -> list[str]:
    if level not in LEVELS:
        raise ValueError(f"grounding level must be one of {', '.join(LEVELS)} (got {level!r})")
    cut = None if level == "leaf" else 2
    paths = {PATH_SEPARATOR.join(item.category_path[:cut]) for item in dataset.items.values() if item.category_path}
    # an inner node of the tree (Office: 69 items filed under just 'Office & School Supplies') is not offered: measured
    # on validation, the model then grounds most tags in the generic top level; its items stay reachable under it
    inner = {PATH_SEPARATOR.join(p.split(PATH_SEPARATOR)[:n]) for p in paths for n in range(1, len(p.split(PATH_SEPARATOR)))}
    return sorted(paths - inner)


def label_paths(paths: list[str]) -> list[str]:
    """Unique short labels for `paths`: the last component; the last two where that repeats; else the path."""
    def tail(path: str, n: int) -> str:
        return " / ".join(path.split(PATH_SEPARATOR)[-n:])

    labels = [tail(p, 1) for p in paths]
    for n in (2, None):
        counts = Counter(labels)
        labels = [(tail(p, n) if n else p) if counts[label] > 1 else label for p, label in zip(paths, labels)]
    if len(set(labels)) != len(labels):  # two paths that differ only in separators' spacing: number them
        seen: Counter[str] = Counter()
        unique = []
        for label in labels:
            seen[label] += 1
            unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
        labels = unique
    return labels


_CACHE: dict[tuple[str, str, str], CategoryVocabulary] = {}
_LOCK = threading.Lock()


def category_vocabulary(dataset: Dataset, level: str = "leaf") -> CategoryVocabulary:
    """The dataset's category vocabulary at `level`, built once per dataset content."""
    key = (dataset.name, dataset.content_hash(), level)
    with _LOCK:
        if key not in _CACHE:
            paths = _paths(dataset, level)
            _CACHE[key] = CategoryVocabulary(level=level, labels=tuple(label_paths(paths)), paths=tuple(paths))
        return _CACHE[key]
