"""An in-memory dataset (catalogue + histories) and its leave-last-out split."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from recgpt.data.records import Interaction, Item, UserHistory
from recgpt.errors import DataError, UnknownUserError
from recgpt.text_fields import words_of

T = TypeVar("T")

MIN_INTERACTIONS_FOR_SPLIT = 3
"""A user needs a training prefix, a validation target and a test target."""


class Split(str, Enum):
    """Which target is held out.

    - `validation`: history = all but the last two interactions, target = the second to last.
    - `test`: history = all but the last interaction, target = the last.
    - `full`: the whole history, no target (serving: recommend for today).
    """

    validation = "validation"
    test = "test"
    full = "full"


@dataclass(frozen=True)
class SplitExample:
    """What a model may see (`history`) and what it is scored on (`target`)."""

    user: UserHistory
    history: tuple[Interaction, ...]
    target: Interaction | None


@dataclass
class Dataset:
    """A catalogue and user histories, validated and cross-checked at load time."""

    name: str
    items: dict[str, Item]
    users: dict[str, UserHistory]
    source_files: tuple[str, ...] = ()
    _hash: str | None = field(default=None, repr=False)
    _derived: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)
    _derived_lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Re-entrant: a derived value may be made from another (the persona guard's known words from `word_counts`)."""

    def __post_init__(self) -> None:
        for user in self.users.values():
            for position, event in enumerate(user.interactions):
                if event.item_id not in self.items:
                    raise DataError(
                        f"{self.name}: user {user.user_id!r} interaction #{position} field 'item_id': "
                        f"item {event.item_id!r} is not in the catalogue"
                    )

    def user(self, user_id: str) -> UserHistory:
        try:
            return self.users[str(user_id)]
        except KeyError:
            raise UnknownUserError(
                f"user {user_id!r} is not in dataset {self.name!r} ({len(self.users)} users; "
                f"e.g. {', '.join(list(self.users)[:3])})"
            ) from None

    def example(self, user_id: str, split: Split | str = Split.test) -> SplitExample:
        """The leave-last-out view of one user. Nothing at or after the target is in `history`."""
        split = Split(split)
        user = self.user(user_id)
        events = tuple(user.interactions)
        if split is Split.full:
            return SplitExample(user=user, history=events, target=None)
        if len(events) < MIN_INTERACTIONS_FOR_SPLIT:
            raise DataError(
                f"user {user.user_id!r} has {len(events)} interactions; the {split.value} split needs "
                f"at least {MIN_INTERACTIONS_FOR_SPLIT}"
            )
        cut = len(events) - (2 if split is Split.validation else 1)
        return SplitExample(user=user, history=events[:cut], target=events[cut])

    def split_users(self, split: Split | str) -> list[str]:
        """Users eligible for a split, in a stable order."""
        split = Split(split)
        if split is Split.full:
            return list(self.users)
        return [u for u, h in self.users.items() if len(h.interactions) >= MIN_INTERACTIONS_FOR_SPLIT]

    def training_sequences(self, split: Split | str) -> dict[str, list[str]]:
        """What a model may learn from when it is scored on `split`: every eligible user's item ids before that
        split's held-out target, oldest first.

        - `test`: all but each user's last interaction (the validation target is in, the test target is not);
        - `validation`: all but the last two (neither held-out target);
        - `full`: every interaction of every user (serving: nothing is held out).

        Here, in the data layer beside `example`, so that the baselines (eval) and the collaborative retriever
        (tools) learn from one definition of "the past" and no model sees a target of the split it is scored on.
        """
        split = Split(split)
        return {user_id: [e.item_id for e in self.example(user_id, split).history] for user_id in self.split_users(split)}

    def training_prefix(self, user_id: str) -> tuple[Interaction, ...]:
        """Interactions usable for training and index statistics: before both held-out targets."""
        return self.example(user_id, Split.validation).history

    def categories(self) -> list[str]:
        """Distinct full category paths of the catalogue (sorted)."""
        return sorted({item.category for item in self.items.values() if item.category_path})

    def content_hash(self) -> str:
        """A short hash of the data, for reports and cache keys."""
        if self._hash is None:
            digest = hashlib.sha256()
            for item_id in sorted(self.items):
                digest.update(self.items[item_id].model_dump_json().encode())
            for user_id in sorted(self.users):
                digest.update(self.users[user_id].model_dump_json().encode())
            self._hash = digest.hexdigest()[:16]
        return self._hash

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """What `make` computes from this dataset, computed once and kept on the dataset itself (its category
        vocabularies, its popular items): a value derived from a dataset lives and dies with that dataset object, so
        two datasets in one process never share one, and no module-level cache is needed."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = make()
            return self._derived[key]

    def word_counts(self) -> Counter[str]:
        """How often each word (`text_fields.words_of`) appears in the catalogue's titles, category levels and
        genres: what "a word this shop uses" means to the persona guard and the readability audit."""
        def count() -> Counter[str]:
            counts: Counter[str] = Counter()
            for item in self.items.values():
                counts.update(words_of(" ".join((item.title, *item.category_path, *item.genres))))
            return counts
        return self.derived("word_counts", count)

    def items_of(self, events: Iterable[Interaction]) -> list[Item]:
        return [self.items[e.item_id] for e in events]
