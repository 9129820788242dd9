"""GRPO reward functions in TRL's calling convention, built on the pure rewards of `rewards.py`.

TRL calls every function in `reward_funcs` as `f(prompts, completions, **dataset_columns)` and logs
each one's mean under `rewards/<name>/mean`; the trainer optimises the `reward_weights`-weighted sum.
We pass the shaped reward (CRS or SUM) with weight 1 and every component and gate with weight 0,
so each part of the reward and each gate's pass rate is logged on every step without affecting the
objective.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recgpt.training.rewards import AccuracyMix, Gates, SumWeights, TagRewardParts, crs_reward, r_acc, r_div, r_len, sum_reward

CategoryMapper = Callable[[list[str]], list[frozenset[str]]]
"""tags -> the label set of each tag's nearest catalogue category (at the level R_acc is measured)."""
Embedder = Callable[[list[str]], np.ndarray]
AlignScorer = Callable[[list[str], list[str]], list[float]]
"""(prompts as text, completions as text) -> reward-model reward in [0, 1]."""
CategoryGrounder = Callable[[str], "frozenset[str] | None"]
"""A grounded answer's category label -> its label set at R_acc's level (None: not a vocabulary label)."""
DenseScorer = Callable[[str, str], "tuple[float, float]"]
"""(user id, completion text) -> (leaf credit, r_rank): the dense parts, from the user's training cut and the served
retriever (`grpo.real_tag_rewards`)."""


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as message lists, standard ones as strings."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


_TAG_FIELD = re.compile(r'"tag"\s*:\s*"((?:[^"\\]|\\.){1,120})"')
_CATEGORY_FIELD = re.compile(r'"category"\s*:\s*"((?:[^"\\]|\\.){1,300})"')


def parse_tags(text: str) -> list[str]:
    """Tags of an expert answer (`{"tags": [{"tag": ...}, ...]}`), leniently.

    At serving time the server's JSON schema makes every answer well-formed; GRPO rollouts are
    sampled without that constraint, so an answer is read for what the constrained decoder would
    have kept: the `tag` fields (or bare strings in `tags`), even when the JSON around them is
    broken. Only an answer with no recognisable tag scores [] (every reward 0).
    """
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("tags"), list):
            tags = [str(t.get("tag", "") if isinstance(t, dict) else t).strip() for t in data["tags"]]
            return [t for t in tags if t]
    except ValueError:
        pass
    return [m.strip() for m in _TAG_FIELD.findall(text) if m.strip()]


def parse_categories(text: str) -> list[str | None]:
    """The `category` each tag of `parse_tags(text)` names in a grounded answer (None where it names none)."""
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("tags"), list):
            return [str(t.get("category") or "") or None if isinstance(t, dict) else None
                    for t in data["tags"] if str(t.get("tag", "") if isinstance(t, dict) else t).strip()]
    except ValueError:
        pass
    categories: list[str | None] = []
    for entry in re.split(r"\}\s*,\s*\{", text):  # broken JSON: pair fields within each tag object
        if _TAG_FIELD.search(entry):
            found = _CATEGORY_FIELD.search(entry)
            categories.append(found.group(1) if found else None)
    return categories


TOP_CATEGORY = "top_category_share"


def top_category(answers: Sequence[frozenset[str]]) -> tuple[str | None, float]:
    """The category named by the most `answers` (each a set of named categories) and the share of answers naming it;
    (None, 0) for none. The collapse monitor of GRPO and of the offline rounds."""
    counts = Counter(category for answer in answers for category in answer)
    if not counts or not answers:
        return None, 0.0
    top, n = counts.most_common(1)[0]
    return top, n / len(answers)


def top_category_share(answers: Sequence[frozenset[str]]) -> float:
    """The share of `answers` that name the single most named category; 0 for none."""
    return top_category(answers)[1]


@dataclass
class TagRewards:
    """Computes every part once per batch and serves them as named TRL reward functions."""

    map_categories: CategoryMapper
    embed: Embedder
    align: AlignScorer
    ground: CategoryGrounder | None = None
    """Grounded answers: each tag's named category counts for R_acc (nearest-category mapping where it names none)."""
    gates: Gates = field(default_factory=Gates)
    weights: SumWeights = field(default_factory=SumWeights)
    dense: DenseScorer | None = None
    """Scores the dense parts (leaf, rank) when the rows carry a `user_id` column; without it they stay 0."""
    mix: AccuracyMix = field(default_factory=AccuracyMix)
    """What accuracy means inside CRS/SUM (sparse by default; `AccuracyMix.dense()` with `dense`)."""
    rollout_log: Path | None = None
    """Every scored rollout appended here as a JSON line (batch, tags, categories, targets, parts): a run's rewards
    can be hacked in ways its logged means hide (filler words, the same answer for every user), so the record keeps
    what the policy actually wrote."""
    sameness_window: int = 10
    """Earlier batches (other users' prompts) that `same_answer` compares each rollout with."""
    _cache: dict[tuple[str, ...], list[TagRewardParts]] = field(default_factory=dict, repr=False)
    _same: list[float] = field(default_factory=list, repr=False)
    _top_share: float = field(default=0.0, repr=False)
    _recent: deque[list[frozenset[str]]] = field(default_factory=deque, repr=False)
    _batches_logged: int | None = field(default=None, repr=False)

    def parts(self, prompts: Sequence[Any], completions: Sequence[Any], target_categories: Sequence[Sequence[str]],
              user_id: Sequence[str] | None = None) -> list[TagRewardParts]:
        texts = [completion_text(c) for c in completions]
        prompt_texts = [completion_text(p) for p in prompts]
        users = list(user_id) if user_id is not None else [None] * len(texts)
        key = tuple(prompt_texts + texts + [json.dumps(list(map(list, target_categories))), json.dumps(users)])
        if key in self._cache:
            return self._cache[key]
        aligns = self.align(prompt_texts, texts)
        out = []
        for text, align, targets, user in zip(texts, aligns, target_categories, users):
            tags = parse_tags(text)
            if not tags:
                out.append(TagRewardParts(acc=0.0, align=0.0, div=0.0, len=0.0))
                continue
            leaf, rank = self.dense(user, text) if self.dense is not None and user is not None else (0.0, 0.0)
            out.append(TagRewardParts(acc=r_acc(self.tag_categories(text, tags), targets), align=float(align),
                                      div=r_div(self.embed(tags)), len=r_len(tags), leaf=leaf, rank=rank))
        self._cache = {key: out}  # one batch at a time: the component functions reuse it
        self._same = self.sameness([frozenset(c for c in parse_categories(t) if c) or frozenset(parse_tags(t)) for t in texts])
        if self.rollout_log is not None:
            self.log_rollouts(texts, target_categories, out)
        return out

    def sameness(self, answers: list[frozenset[str]]) -> list[float]:
        """Per rollout: the share of the previous `sameness_window` batches (one prompt each on CPU: other users)
        whose answers name any category this rollout names. Small while the policy answers each user (popular
        categories recur now and then), near 1 once it answers everyone alike (where both 50-step CRS runs ended).
        Logged with weight 0, like the gates: a monitor, never an objective."""
        earlier = [frozenset().union(*batch) for batch in self._recent]
        values = [sum(1 for other in earlier if answer & other) / len(earlier) if earlier else 0.0 for answer in answers]
        self._recent.append(answers)
        while len(self._recent) > self.sameness_window:
            self._recent.popleft()
        self._top_share = top_category_share([a for batch in self._recent for a in batch])
        return values

    def log_rollouts(self, texts: list[str], target_categories: Sequence[Sequence[str]], parts: list[TagRewardParts]) -> None:
        assert self.rollout_log is not None
        if self._batches_logged is None:  # a resumed run continues the numbering of the file it appends to
            self._batches_logged = 1 + max((json.loads(line)["batch"] for line in self.rollout_log.read_text().splitlines()
                                            if line.strip()), default=-1) if self.rollout_log.exists() else 0
        with self.rollout_log.open("a") as log:
            for text, targets, part, same in zip(texts, target_categories, parts, self._same or [0.0] * len(parts)):
                tags = parse_tags(text)
                log.write(json.dumps({"batch": self._batches_logged, "tags": tags,
                                      "categories": parse_categories(text) if tags else [], "targets": list(targets),
                                      "parts": asdict(part), "crs": crs_reward(part, self.gates, self.mix),
                                      "sum": sum_reward(part, self.weights, self.mix), "same_answer": same}) + "\n")
        self._batches_logged += 1

    def tag_categories(self, text: str, tags: list[str]) -> list[frozenset[str]]:
        named = parse_categories(text) if self.ground is not None else []
        grounded = [self.ground(c) if c and self.ground is not None else None for c in named] if len(named) == len(tags) else [None] * len(tags)
        missing = [t for t, g in zip(tags, grounded) if g is None]
        mapped = iter(self.map_categories(missing) if missing else [])
        return [g if g is not None else next(mapped) for g in grounded]

    def functions(self, shaping: str) -> tuple[list[Callable[..., list[float]]], list[float]]:
        """(reward_funcs, reward_weights) for `GRPOTrainer`: the shaped reward first, then the logged parts."""
        if shaping not in ("crs", "sum"):
            raise ValueError(f"shaping must be crs or sum, got {shaping!r}")

        def make(name: str, value: Callable[[TagRewardParts], float]) -> Callable[..., list[float]]:
            def reward(prompts: Sequence[Any], completions: Sequence[Any], target_categories: Sequence[Sequence[str]], **columns: Any) -> list[float]:
                return [value(p) for p in self.parts(prompts, completions, target_categories, columns.get("user_id"))]

            reward.__name__ = name
            return reward

        shaped = make(shaping, (lambda p: crs_reward(p, self.gates, self.mix)) if shaping == "crs"
                      else (lambda p: sum_reward(p, self.weights, self.mix)))
        parts = [make("r_acc", lambda p: p.acc), make("r_align", lambda p: p.align), make("r_div", lambda p: p.div),
                 make("r_len", lambda p: p.len), make("r_leaf", lambda p: p.leaf), make("r_rank", lambda p: p.rank)]
        gates = [make(f"gate_{g}", lambda p, g=g: float(self.gates.passed(p)[g])) for g in ("align", "div", "len")]

        def same_answer(prompts: Sequence[Any], completions: Sequence[Any], target_categories: Sequence[Sequence[str]], **columns: Any) -> list[float]:
            self.parts(prompts, completions, target_categories, columns.get("user_id"))
            return list(self._same)

        def top_category(prompts: Sequence[Any], completions: Sequence[Any], target_categories: Sequence[Sequence[str]], **columns: Any) -> list[float]:
            """The collapse monitor (`grpo.CollapseStop` reads its logged mean): the share of the recent rollouts that
            name the single most named category."""
            self.parts(prompts, completions, target_categories, columns.get("user_id"))
            return [self._top_share] * len(completions)

        top_category.__name__ = TOP_CATEGORY
        funcs = [shaped, *parts, *gates, same_answer, top_category]
        return funcs, [1.0] + [0.0] * (len(funcs) - 1)
