"""Training data built from the *training split only*: each user's interactions before both held-out
targets (`Dataset.training_prefix`). Nothing from a validation/test target reaches a prompt, a
completion or a statistic.

Within that prefix, a cut splits the past (the prompt's history) from the next `future` interactions
(the supervision), as in RecGPT-V2's SFT: the expert learns to name what the user did next.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from recgpt.agents.expert import training_expert_instructions
from recgpt.data.dataset import Dataset, Split
from recgpt.data.records import Interaction, Item
from recgpt.services.prefix import recommendation_date, render_prefix
from recgpt.tools.environment import build_environment

_WORD = re.compile(r"[A-Za-z][A-Za-z'&-]*")


@dataclass(frozen=True)
class TrainingCut:
    user_id: str
    context: tuple[Interaction, ...]
    future: tuple[Interaction, ...]


def training_cuts(dataset: Dataset, future: int = 3, min_context: int = 2, users: Iterable[str] | None = None) -> list[TrainingCut]:
    """One cut per user: the last `future` interactions of the training prefix are the supervision."""
    cuts = []
    pool = users if users is not None else dataset.split_users(Split.validation)  # users with both held-out targets
    for user_id in sorted(pool):
        prefix = dataset.training_prefix(user_id)
        n_future = min(future, len(prefix) - min_context)
        if n_future < 1:
            continue
        cuts.append(TrainingCut(user_id, prefix[:-n_future], prefix[-n_future:]))
    return cuts


def target_tag(item: Item, max_words: int = 9) -> str:
    """A searchable 'modifier + product' tag from an item: title words (the leading brand-like word
    dropped, no numbers/sizes), then the leaf category if its head word is missing; lowercase."""
    words = _WORD.findall(item.title)
    if len(words) > 3:
        words = words[1:]
    words = words[:max_words]
    leaf = item.category_path[-1] if item.category_path else ""
    if leaf and leaf.split()[-1].lower() not in {w.lower() for w in words}:
        words = words[: max_words - len(leaf.split())] + leaf.split()
    return " ".join(words).lower()


def target_tags(dataset: Dataset, cut: TrainingCut, m: int) -> list[str]:
    """Exactly `m` distinct tags: the future items' tags (newest first), padded with their leaf
    categories, then the context's most frequent leaf categories (known interests, not targets)."""
    tags: list[str] = []

    def add(tag: str) -> None:
        if tag and tag not in tags and len(tags) < m:
            tags.append(tag)

    future_items = [dataset.items[e.item_id] for e in reversed(cut.future)]
    for item in future_items:
        add(target_tag(item))
    for item in future_items:
        add(item.category_path[-1].lower() if item.category_path else "")
    counts = Counter(dataset.items[e.item_id].category_path[-1].lower() for e in cut.context if dataset.items[e.item_id].category_path)
    for leaf, _ in counts.most_common():
        add(leaf)
    while len(tags) < m:  # tiny catalogues: numbered variants keep the schema's exact count
        add(f"{tags[0] if tags else 'popular item'} option {len(tags) + 1}")
    return tags


def expert_prompt(dataset: Dataset, cut: TrainingCut, m: int, country: str = "US", max_items: int = 40,
                  entities: bool = False) -> list[dict[str, str]]:
    """The exact messages the Distributed Expert gets at serving time, for the cut's past only
    (`entities`: the hybrid-compression form, titles as entity markers)."""
    user = dataset.users[cut.user_id]
    env = build_environment(recommendation_date({}, cut.context), country=country)
    prefix, _ = render_prefix(dataset, cut.context, user.profile.describe(), env, max_items, entities)
    return [{"role": "system", "content": prefix}, {"role": "user", "content": training_expert_instructions(m)}]


def sft_example(dataset: Dataset, cut: TrainingCut, m: int, country: str = "US") -> dict[str, list[dict[str, str]]]:
    """A TRL conversational prompt-completion example; the completion is the expert's JSON, compact
    like the server's structured output (`disable_any_whitespace`)."""
    context_leaves = Counter(dataset.items[e.item_id].category_path[-1] for e in cut.context if dataset.items[e.item_id].category_path)
    anchor = context_leaves.most_common(1)[0][0] if context_leaves else "the user's profile"
    tags = [{"tag": t, "rationale": f"Fits the history, which centres on {anchor}."} for t in target_tags(dataset, cut, m)]
    completion = json.dumps({"tags": tags}, separators=(",", ":"))
    return {"prompt": expert_prompt(dataset, cut, m, country), "completion": [{"role": "assistant", "content": completion}]}


def future_categories(dataset: Dataset, cut: TrainingCut) -> list[str]:
    """Full category paths of the cut's future: the targets of R_acc in GRPO."""
    return sorted({dataset.items[e.item_id].category for e in cut.future if dataset.items[e.item_id].category_path})
