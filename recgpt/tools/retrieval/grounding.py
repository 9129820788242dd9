"""Grounded tags: the catalogue's own category vocabulary, offered to the LLM as a server-enforced enum.

Why: a tag written as free text and mapped afterwards to its nearest category lands a small model's vague tag
("blue", "music") on an unrelated category. With grounding, every expert tag carries a category the model picks
from this vocabulary under the JSON schema (vLLM compiles the enum into the decoding grammar, so an invalid
category cannot be sampled), and retrieval searches inside that category.

The enum's values are the category paths themselves ('Office & School Supplies > Paper > Copy Paper'): decoding a
path under the grammar chooses the top level first, then a child of it, and so on, so the schema is hierarchical by
construction. Measured on 16 Office validation users (Qwen2.5-Coder-0.5B, expert alone, K=5): short leaf-name labels
sent a small model to whichever label began like the shop's name (every tag grounded in 'Office Desks': cat HR@5 L2
.000), while full paths reached .44 (free text mapped to its nearest category: .175 on 40 users).

Levels:

- `leaf`: the tree's leaves, the items' full category paths that no other path extends (Office: 2xx; MovieLens:
  19 genres);
- `l2`: the first two levels (Office: 4x), likewise without inner nodes.

Labels (`Context.grounding_labels`): `path`, the whole category path, or `short`, the path without the root that
every path of the dataset shares and without the levels above its last two (Office 'Paper > Photo Paper' for
'Office & School Supplies > Paper > Photo Paper'; MovieLens 'Action' for 'Movies > Action'), lengthened from the
left where two paths would share one label. The enum is decoded token by token, so a label half as long halves the
experts' category tokens (Office: 83 characters a path on average, 39 a short label). Measured on 200 Office
validation users it collapsed (every user's tags in 'Office Electronics > Fax Machines'): the history lists full
paths, the model begins a category the way those begin ('Office ...'), and the grammar completes the one short label
that starts so. `path` stays the default; a short form would need the history to speak it too.

The catalogue list the prompt shows (`prompt_block`) is the same for every user, so it goes in front of the
per-user context and vLLM's prefix cache computes it once for all users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recgpt.data.dataset import Dataset

Level = Literal["leaf", "l2"]
LEVELS: tuple[str, ...] = ("leaf", "l2")
LABELS: tuple[str, ...] = ("path", "short")
SHORT_LEVELS = 2
"""Levels a short label keeps (more where two paths would collide)."""
PATH_SEPARATOR = " > "


@dataclass(frozen=True)
class CategoryVocabulary:
    """The categories a grounded tag may name: labels (enum values) and the catalogue paths they stand for."""

    level: str
    labels: tuple[str, ...]
    paths: tuple[str, ...]
    _by_label: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _by_path: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.paths) or len(set(self.labels)) != len(self.labels):
            raise ValueError("a category vocabulary needs one unique label per path")
        self._by_label.update(zip(self.labels, self.paths))
        self._by_path.update(zip(self.paths, self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def longest_chars(self) -> int:
        return max((len(label) for label in self.labels), default=0)

    def subset(self, keep: list[int]) -> CategoryVocabulary:
        """The vocabulary restricted to the entries at positions `keep` (in vocabulary order)."""
        return CategoryVocabulary(self.level, tuple(self.labels[n] for n in keep), tuple(self.paths[n] for n in keep))

    def path_of(self, label: str) -> str | None:
        """The catalogue path a label names (None for a label outside the vocabulary)."""
        return self._by_label.get(label)

    def label_of(self, category: str) -> str | None:
        """The label of the vocabulary entry that holds a catalogue category path: the entry equal to it or above it
        (an item filed under 'A > B > C' is in the l2 entry 'A > B'); None when no entry holds it (an inner node such
        as 'Office Electronics' alone)."""
        parts = category.split(PATH_SEPARATOR)
        for cut in range(len(parts), 0, -1):
            label = self._by_path.get(PATH_SEPARATOR.join(parts[:cut]))
            if label is not None:
                return label
        return None

    def prompt_block(self) -> str:
        """The vocabulary as the prompt lists it, compactly: one line per parent path, `- parent > child | child`."""
        groups: dict[str, list[str]] = {}
        for label in self.labels:
            parent, _, last = label.rpartition(PATH_SEPARATOR)
            groups.setdefault(parent, []).append(last)
        return "\n".join(f"- {parent + PATH_SEPARATOR if parent else ''}{' | '.join(children)}" for parent, children in groups.items())


def _paths(dataset: Dataset, level: str) -> list[str]:
    if level not in LEVELS:
        raise ValueError(f"grounding level must be one of {', '.join(LEVELS)} (got {level!r})")
    cut = None if level == "leaf" else 2
    paths = {PATH_SEPARATOR.join(item.category_path[:cut]) for item in dataset.items.values() if item.category_path}
    # an inner node of the tree (Office: 69 items filed under just 'Office & School Supplies') is not offered: measured
    # on validation, the model then grounds most tags in the generic top level; its items stay reachable under it
    inner = {PATH_SEPARATOR.join(p.split(PATH_SEPARATOR)[:n]) for p in paths for n in range(1, len(p.split(PATH_SEPARATOR)))}
    return sorted(paths - inner)


def short_labels(paths: list[str]) -> list[str]:
    """Each path without the root all paths share, cut to its last `SHORT_LEVELS` levels, lengthened from the left
    until no two paths share a label (a path that is only the shared root keeps its last level)."""
    split = [p.split(PATH_SEPARATOR) for p in paths]
    root = 0
    while split and all(len(parts) > root + 1 and parts[root] == split[0][root] for parts in split):
        root += 1
    keep = [SHORT_LEVELS] * len(paths)
    while True:
        labels = [PATH_SEPARATOR.join(parts[max(root, len(parts) - n):]) for parts, n in zip(split, keep)]
        seen: dict[str, list[int]] = {}
        for position, label in enumerate(labels):
            seen.setdefault(label, []).append(position)
        clashes = [p for group in seen.values() if len(group) > 1 for p in group
                   if len(split[p]) - keep[p] > root]
        if not clashes:
            return labels
        for position in clashes:
            keep[position] += 1


def category_vocabulary(dataset: Dataset, level: str = "leaf", labels: str = "path") -> CategoryVocabulary:
    """The dataset's category vocabulary at `level` with `labels` ('path' or 'short'), built once and kept on the
    dataset (`Dataset.derived`)."""
    if labels not in LABELS:
        raise ValueError(f"grounding labels must be one of {', '.join(LABELS)} (got {labels!r})")

    def build() -> CategoryVocabulary:
        paths = _paths(dataset, level)
        names = paths if labels == "path" else short_labels(paths)
        if len(set(names)) != len(names):  # identical paths cannot occur; kept as a guard for the short form
            names = paths
        return CategoryVocabulary(level=level, labels=tuple(names), paths=tuple(paths))

    return dataset.derived(("category_vocabulary", level, labels), build)
