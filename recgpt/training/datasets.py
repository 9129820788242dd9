"""Training data built from the *training split only*: each user's interactions before both held-out
targets (`Dataset.training_prefix`). Nothing from a validation/test target reaches a prompt, a
completion or a statistic.

Within that prefix, a cut splits the past (the prompt's history) from the next `future` interactions
(the supervision), as in RecGPT-V2's SFT: the expert learns to name what the user did next.

With a category vocabulary (`grounding_vocabulary`; the serving default is leaf grounding) the prompt is the
grounded expert's and every target tag carries the catalogue category of the item it was made from, so the
trained policy learns the answer the server's grounded schema asks for (`grounded_expert_schema` validates it).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from recgpt.agents.expert import RATIONALE_CHARS, training_expert_instructions
from recgpt.data.dataset import Dataset, Split
from recgpt.data.records import Interaction, Item
from recgpt.schema.context import Context
from recgpt.services.prefix import recommendation_date, render_prefix
from recgpt.text_fields import TAG_CHARS, clip_sentence, to_english_text
from recgpt.tools.context.environment import build_environment
from recgpt.tools.retrieval.grounding import CategoryVocabulary, category_vocabulary

TAG_CHARS_MAX = 60
"""The served tag's length bound (`ExpertTag.tag`)."""

_WORD = re.compile(r"[A-Za-z][A-Za-z'&-]*")
_NOT_TAG = re.compile(f"[^{TAG_CHARS}]+")


@dataclass(frozen=True)
class TrainingCut:
    user_id: str
    context: tuple[Interaction, ...]
    future: tuple[Interaction, ...]



SERVED_RATIONALE_CHARS = Context().expert_rationale_chars
"""The expert's rationale as the graph serves it (0: none). Training prompts, completions, sampled rounds, GRPO
rollouts and `eval --method expert` all follow it, so a policy learns, and is measured on, the answer it gives served."""

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


TUNING_SAMPLES = (100, 200, 300, 500)
"""Sizes of the seed-0 validation samples that evaluations tune on (`recgpt eval --split validation --users N`)."""


def validation_target_cuts(dataset: Dataset, n: int, seed: int, tuning_seed: int = 0) -> list[TrainingCut]:
    """`n` cuts whose future is the user's validation target and whose context is the training prefix, from users
    outside every seed-0 validation sample that tuning uses (`TUNING_SAMPLES`).

    Why not training-prefix cuts: the validation split's statistics (SASRec, next-category counts) are learnt from the
    training prefixes, so a cut inside a prefix has its own future inside them. Its evidence block and its retrieval
    reward would then have seen the answer. A validation target is outside them, so the evidence and the reward are
    the ones serving computes, with nothing of the target in them; the test targets are never touched, and the tuning
    users' validation targets stay unseen."""
    from recgpt.eval.harness import sample_users  # deferred: the evaluation harness (its graph stack)

    held = set().union(*(sample_users(dataset, Split.validation.value, size, tuning_seed) for size in TUNING_SAMPLES))
    pool = [u for u in dataset.split_users(Split.validation) if u not in held]
    cuts = []
    for user_id in random.Random(seed).sample(sorted(pool), min(n, len(pool))):
        example = dataset.example(user_id, Split.validation)
        if example.target is not None and example.history:
            cuts.append(TrainingCut(user_id, example.history, (example.target,)))
    return cuts


def _stem(word: str) -> str:
    return word.lower().removesuffix("es") if word.lower().endswith(("ches", "shes", "xes", "sses")) else word.lower().removesuffix("s")


def target_tag(item: Item, max_words: int = 9) -> str:
    """A searchable 'modifier + product' tag from an item: title words (the leading brand-like word
    dropped, no numbers/sizes), then the leaf category if its head word is missing; lowercase."""
    words = _WORD.findall(item.title)
    if len(words) > 3:
        words = words[1:]
    words = words[:max_words]
    leaf = item.category_path[-1] if item.category_path else ""
    if leaf and _stem(leaf.split()[-1]) not in {_stem(w) for w in words}:  # "sharpener" already names "Sharpeners"
        words = words[: max_words - len(leaf.split())] + leaf.split()
    while len(" ".join(words)) > TAG_CHARS_MAX and len(words) > 1:  # within the served schema's bound
        words = words[1:] if len(words) > 2 else words[:-1]
    return as_tag(" ".join(words))


def grounding_vocabulary(dataset: Dataset, grounding: str) -> CategoryVocabulary | None:
    """The vocabulary of a `grounding` level (leaf, l2), or None for "off" (ungrounded prompts and answers)."""
    return None if grounding == "off" else category_vocabulary(dataset, grounding)


def label_of(vocabulary: CategoryVocabulary, item: Item) -> str | None:
    """The vocabulary label an item is filed under: its own path or the nearest ancestor that is one (None for
    an item filed above the vocabulary's level, e.g. Office's items under a bare inner node)."""
    return vocabulary.label_of(item.category) if item.category else None


@dataclass(frozen=True)
class TargetTag:
    tag: str
    category: str | None  # a vocabulary label in a grounded example, else None


def as_tag(text: str) -> str:
    """`text` within the served tag pattern (`tag_text`): allowed characters only, a letter first, bounded."""
    words = " ".join(_NOT_TAG.sub(" ", text).split()).lower()
    start = next((i for i, ch in enumerate(words) if ch.isalpha()), len(words))
    return words[start:start + TAG_CHARS_MAX].strip()


def _leaf_tag(item: Item) -> str:
    return as_tag(item.category_path[-1]) if item.category_path else ""


def popular_items_by_leaf(dataset: Dataset) -> list[Item]:
    """One item per leaf category, the leaves ordered by their interactions in all training prefixes (never a
    held-out target): the padding of last resort, a popularity prior. Computed once per dataset (`Dataset.derived`)."""

    def count() -> list[Item]:
        counts: Counter[str] = Counter()
        example: dict[str, Item] = {}
        for user_id in dataset.split_users(Split.validation):  # users with held-out targets to keep out
            for event in dataset.training_prefix(user_id):
                item = dataset.items[event.item_id]
                if item.category_path:
                    counts[item.category] += 1
                    example.setdefault(item.category, item)
        return [example[c] for c, _ in counts.most_common()]

    return dataset.derived("popular_items_by_leaf", count)


def grounded_target_tags(dataset: Dataset, cut: TrainingCut, m: int, vocabulary: CategoryVocabulary | None) -> list[TargetTag]:
    """Exactly `m` distinct tags, newest evidence first: the future items' tags; then the future items' leaf
    categories, the context's most frequent leaf categories (known interests, not targets) and the catalogue's most
    popular leaves, each only when its category is not named yet. Grounded, each tag names the category of the
    item it came from; a tag whose item has no vocabulary label is skipped."""
    tags: list[TargetTag] = []

    def add(tag: str, item: Item, new_category: bool) -> None:
        category = label_of(vocabulary, item) if vocabulary is not None else None
        if vocabulary is not None and category is None:
            return
        named = {t.category if vocabulary is not None else t.tag for t in tags}
        if new_category and (category if vocabulary is not None else tag) in named:
            return
        if tag and tag not in {t.tag for t in tags} and len(tags) < m:
            tags.append(TargetTag(tag, category))

    future_items = [dataset.items[e.item_id] for e in reversed(cut.future)]
    for item in future_items:
        add(target_tag(item), item, new_category=False)
    for item in future_items:
        add(_leaf_tag(item), item, new_category=True)
    context_items = [dataset.items[e.item_id] for e in cut.context if dataset.items[e.item_id].category_path]
    counts = Counter(_leaf_tag(item) for item in context_items)
    representative = {_leaf_tag(item): item for item in reversed(context_items)}
    for leaf, _ in counts.most_common():
        add(leaf, representative[leaf], new_category=True)
    for item in popular_items_by_leaf(dataset):
        if len(tags) >= m:
            break
        add(_leaf_tag(item), item, new_category=True)
    if len(tags) < m:  # a catalogue with fewer than m categories: numbered variants keep the schema's exact count
        first = tags[0] if tags else TargetTag("popular item", vocabulary.labels[0] if vocabulary is not None else None)
        tags += [TargetTag(f"{first.tag[:TAG_CHARS_MAX - 10]} option {n + 1}", first.category) for n in range(len(tags), m)]
    return tags


def target_tags(dataset: Dataset, cut: TrainingCut, m: int) -> list[str]:
    """The ungrounded target tags (`grounded_target_tags` without a vocabulary)."""
    return [t.tag for t in grounded_target_tags(dataset, cut, m, None)]


def expert_prompt(dataset: Dataset, cut: TrainingCut, m: int, country: str = "US", max_items: int = 40,
                  entities: bool = False, vocabulary: CategoryVocabulary | None = None, evidence: str = "",
                  rationale_chars: int = SERVED_RATIONALE_CHARS, entity_categories: bool = True) -> list[dict[str, str]]:
    """The exact messages the Distributed Expert gets at serving time, for the cut's past only
    (`entities`: the hybrid-compression form, titles as entity markers; `vocabulary`: the grounded expert's
    instructions, whose categories the served schema's enum carries; `evidence`: the collaborative evidence block,
    `services.prefix.evidence_block`, computed from statistics that never saw the cut's future)."""
    user = dataset.users[cut.user_id]
    env = build_environment(recommendation_date({}, cut.context), country=country)
    prefix, _ = render_prefix(dataset, cut.context, user.profile.describe(), env, max_items, entities, evidence=evidence,
                              entity_categories=entity_categories)
    return [{"role": "system", "content": prefix},
            {"role": "user", "content": training_expert_instructions(m, vocabulary is not None, rationale_chars > 0)}]


def sft_example(dataset: Dataset, cut: TrainingCut, m: int, country: str = "US",
                vocabulary: CategoryVocabulary | None = None,
                rationale_chars: int = SERVED_RATIONALE_CHARS) -> dict[str, list[dict[str, str]]]:
    """A TRL conversational prompt-completion example; the completion is the expert's JSON, compact like the
    server's structured output (`disable_any_whitespace`), its keys in the served schema's order (category first)."""
    context_leaves = Counter(dataset.items[e.item_id].category_path[-1] for e in cut.context if dataset.items[e.item_id].category_path)
    anchor = context_leaves.most_common(1)[0][0] if context_leaves else "the user's profile"
    rationale = to_english_text(clip_sentence(f"The history centres on {anchor}.", RATIONALE_CHARS), RATIONALE_CHARS)
    tags = [({"category": t.category} if t.category is not None else {}) | {"tag": t.tag}
            | ({"rationale": rationale} if rationale_chars > 0 else {}) for t in grounded_target_tags(dataset, cut, m, vocabulary)]
    completion = json.dumps({"tags": tags}, separators=(",", ":"))
    return {"prompt": expert_prompt(dataset, cut, m, country, vocabulary=vocabulary, rationale_chars=rationale_chars),
            "completion": [{"role": "assistant", "content": completion}]}


def future_categories(dataset: Dataset, cut: TrainingCut) -> list[str]:
    """Full category paths of the cut's future: the targets of R_acc in GRPO."""
    return sorted({dataset.items[e.item_id].category for e in cut.future if dataset.items[e.item_id].category_path})
