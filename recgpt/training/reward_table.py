"""A reward table: the offline rounds' dense reward precomputed per prompt, so GRPO can run where recgpt's retrieval
stack cannot (a lent GPU machine: torch, transformers and TRL, no Chroma, no MiniLM weights, no network).

The served retriever searches a grounded tag *inside* its catalogue category, so the held-out item can only appear in
the list of a tag grounded in the item's own category, and categories at the leaf are disjoint. What `r_rank` needs
is therefore, per prompt, (1) where the held-out item ranks inside its category's list and (2) how long the other
named categories' lists are; the interleaved position follows exactly. `build_reward_table` asks the served retriever
for (1) with the category's own name as the tag, and counts (2) from the catalogue less the user's history.

Two parts are approximations, and `agreement` measures them against the exact reward of a scored round:
- the rank inside the category is the one the category's name gets, not the one the written tag would get;
- R_div is the share of distinct tags (one-hot tag embeddings) instead of MiniLM's cosine distances.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recgpt.errors import RecGPTError
from recgpt.eval.metrics import path_at_level
from recgpt.training.grpo_rewards import TagRewards, parse_categories, parse_tags
from recgpt.training.rewards import AccuracyMix, Gates, TagRewardParts, crs_reward, r_acc, r_div, r_len, sum_reward

TABLE_VERSION = 1


@dataclass
class TablePrompt:
    """One prompt's row: the served prompt and what its answers are scored against."""

    user_id: str
    prompt: list[dict[str, str]]
    level_targets: list[str]
    """The held-out items' categories at the table's level (R_acc)."""
    leaf_targets: list[str]
    """... and at the leaf (leaf credit)."""
    ranks: dict[str, int]
    """Category label -> 1-based rank of the held-out item in that category's list (labels holding it, in the list)."""
    history_counts: dict[str, int] = field(default_factory=dict)
    """Category label -> history items in it: the retriever excludes them, so that list is shorter."""


@dataclass
class RewardTable:
    dataset: str
    level: str
    depth: int
    per_tag: int
    labels: dict[str, str]
    """Category label (as the grounded schema's enum names it) -> its full catalogue path."""
    sizes: dict[str, int]
    """Category label -> catalogue items in it."""
    schema: dict[str, Any]
    """The grounded expert's JSON schema as served: GRPO's rollouts decode under it."""
    prompts: list[TablePrompt]
    version: int = TABLE_VERSION

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> RewardTable:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise RecGPTError(f"{path}: not a reward table ({exc})") from None
        if raw.get("version") != TABLE_VERSION:
            raise RecGPTError(f"{path}: reward table version {raw.get('version')}, this recgpt reads {TABLE_VERSION}")
        raw["prompts"] = [TablePrompt(**p) for p in raw["prompts"]]
        return cls(**raw)

    def rows(self) -> list[dict[str, Any]]:
        """GRPO's training rows (TRL conversational prompts with the reward's columns)."""
        return [{"prompt": p.prompt, "target_categories": p.level_targets, "user_id": p.user_id} for p in self.prompts]


def list_length(table: RewardTable, prompt: TablePrompt, label: str) -> int:
    return max(0, min(table.per_tag, table.sizes.get(label, 0) - prompt.history_counts.get(label, 0)))


def interleaved_rank(table: RewardTable, prompt: TablePrompt, labels: Sequence[str | None]) -> int | None:
    """The held-out item's 1-based position in the round-robin merge of the named categories' lists (best tag first,
    a repeated category's list adding nothing: the merge deduplicates), or None when no list holds it."""
    distinct = list(dict.fromkeys(label for label in labels if label))
    best: int | None = None
    for j, label in enumerate(distinct):
        rank = prompt.ranks.get(label)
        if rank is None or rank > list_length(table, prompt, label):
            continue
        lengths = [list_length(table, prompt, other) for other in distinct]
        position = sum(min(n, rank - 1) for n in lengths) + sum(1 for n in lengths[:j] if n >= rank) + 1
        best = position if best is None else min(best, position)
    return best


_WORD = re.compile(r"\w+")


def onehot_embed(tags: list[str]) -> np.ndarray:
    """Tags as one-hot vectors of their normalised words: identical tags coincide, others are orthogonal."""
    keys = [" ".join(_WORD.findall(t.casefold())) for t in tags]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    out = np.zeros((len(tags), max(1, len(index))))
    for row, key in enumerate(keys):
        out[row, index[key]] = 1.0
    return out


def table_parts(table: RewardTable, prompt: TablePrompt, text: str) -> TagRewardParts:
    """Every reward part of one answer, from the table alone (alignment 1: no judge gates the rounds)."""
    tags = parse_tags(text)
    if not tags:
        return TagRewardParts(acc=0.0, align=0.0, div=0.0, len=0.0)
    named = parse_categories(text)
    labels = named if len(named) == len(tags) else [None] * len(tags)
    paths = [table.labels.get(label) if label else None for label in labels]
    at_level = [path_at_level(p, table.level) if p else frozenset() for p in paths]
    at_leaf = [path_at_level(p, "leaf") if p else frozenset() for p in paths]
    position = interleaved_rank(table, prompt, [label if label in table.labels else None for label in labels])
    rank = 1.0 / math.log2(position + 1) if position is not None and position <= table.depth else 0.0
    return TagRewardParts(acc=r_acc(at_level, prompt.level_targets), align=1.0, div=r_div(onehot_embed(tags)),
                          len=r_len(tags), leaf=r_acc(at_leaf, prompt.leaf_targets), rank=rank)


def table_rewards(table: RewardTable, gates: Gates, mix: AccuracyMix | None = None) -> TagRewards:
    """GRPO's `TagRewards` on the table: R_acc from the named categories, the dense parts from `table_parts`."""
    by_user = {p.user_id: p for p in table.prompts}

    def dense(user: str, text: str) -> tuple[float, float]:
        parts = table_parts(table, by_user[user], text)
        return parts.leaf, parts.rank

    def ground(label: str) -> frozenset[str] | None:
        path = table.labels.get(label)
        return path_at_level(path, table.level) if path else None

    def align(prompts: list[str], answers: list[str]) -> list[float]:
        return [1.0] * len(answers)

    return TagRewards(map_categories=lambda tags: [frozenset() for _ in tags], embed=onehot_embed, align=align,
                      ground=ground, gates=gates, dense=dense, mix=mix or AccuracyMix.dense())


def agreement(table: RewardTable, round_dir: Path, gates: Gates) -> dict[str, Any]:
    """How the table's reward agrees with the exact one on a scored offline round of the same prompts
    (`sample-round`'s samples.jsonl and scores.jsonl): per part and per shaping, the Pearson and Spearman
    correlations over answers, and how often the two pick the same best answer of a group."""
    from recgpt.eval.runs import KeyedStore  # deferred: the CPU side only (the GPU side never measures agreement)

    samples = {key: value.get("answer") for key, value in KeyedStore(round_dir / "samples.jsonl").values.items()
               if isinstance(value, dict)}
    group_size = int(json.loads((round_dir / "summary.json").read_text())["config"]["samples"])
    by_user = {p.user_id: p for p in table.prompts}
    exact: dict[str, list[float]] = {k: [] for k in ("rank", "leaf", "acc", "crs", "sum")}
    approx: dict[str, list[float]] = {k: [] for k in exact}
    same_best = {"crs": [0, 0], "sum": [0, 0]}
    mix = AccuracyMix.dense()
    for line in (round_dir / "scores.jsonl").read_text().splitlines():
        row = json.loads(line)
        prompt = by_user.get(row["user_id"])
        if prompt is None:
            continue
        answers = [a for i in range(group_size) if (a := samples.get(f"sample:{row['user_id']}:{i}"))]
        if len(answers) != len(row["samples"]):
            continue  # a failed answer shifted the order: skip the group rather than misalign it
        group = []
        for text, scored in zip(answers, row["samples"]):
            truth = TagRewardParts(**scored)
            guess = table_parts(table, prompt, text)
            for part in ("rank", "leaf", "acc"):
                exact[part].append(getattr(truth, part))
                approx[part].append(getattr(guess, part))
            pair = ((crs_reward(truth, gates, mix), crs_reward(guess, gates, mix)),
                    (sum_reward(truth, mix=mix), sum_reward(guess, mix=mix)))
            for name, (e, a) in zip(("crs", "sum"), pair):
                exact[name].append(e)
                approx[name].append(a)
            group.append(pair)
        for k, name in enumerate(("crs", "sum")):
            truth_scores = [p[k][0] for p in group]
            if len(set(truth_scores)) > 1:
                same_best[name][1] += 1
                same_best[name][0] += int(int(np.argmax(truth_scores)) == int(np.argmax([p[k][1] for p in group])))
    from scipy.stats import rankdata  # deferred: as above

    out: dict[str, Any] = {"answers": len(exact["rank"])}
    for name in exact:
        e, a = np.asarray(exact[name]), np.asarray(approx[name])
        out[name] = {"pearson": _corr(e, a), "spearman": _corr(rankdata(e), rankdata(a)),
                     "mean_exact": float(e.mean()) if len(e) else None, "mean_table": float(a.mean()) if len(a) else None}
    out["same_best_answer"] = {name: (hit / total if total else None) for name, (hit, total) in same_best.items()}
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def build_reward_table(dataset: str, max_users: int, seed: int, tags_per_expert: int, grounding: str = "leaf",
                       level: str = "l2", depth: int = 300, per_tag: int = 60, evidence_categories: int = 10,
                       show_progress: bool = True) -> RewardTable:
    """The table of an offline round's prompts (the same validation-target cuts and served prompts as
    `recgpt train sample-round` with the same seed), scored by the served retriever. No LLM call."""
    # deferred: the dataset and serving stack, which the GPU side of the table never imports
    from recgpt.agents.expert import grounded_expert_schema
    from recgpt.eval.runs import iter_progress
    from recgpt.schema.context import Context
    from recgpt.services.prefix import evidence_block, user_evidence
    from recgpt.services.resources import resolve
    from recgpt.training.datasets import (
        SERVED_RATIONALE_CHARS,
        expert_prompt,
        future_categories,
        grounding_vocabulary,
        validation_target_cuts,
    )
    from recgpt.training.sample_round import SCORING_SPLIT, served_ranker

    resources = resolve(dataset)
    data = resources.dataset
    vocabulary = grounding_vocabulary(data, grounding)
    if vocabulary is None:
        raise RecGPTError("a reward table needs grounded answers (--grounding leaf or l2): r_rank follows the categories")
    ctx = Context(evidence_categories=evidence_categories)
    rank = served_ranker(resources, per_tag, per_tag, SCORING_SPLIT)
    labels = {label: vocabulary.path_of(label) or "" for label in vocabulary.labels}
    label_of_path = {path: label for label, path in labels.items()}
    sizes: dict[str, int] = {}
    for item in data.items.values():
        if (label := label_of_path.get(item.category)) is not None:
            sizes[label] = sizes.get(label, 0) + 1
    cuts = {cut.user_id: cut for cut in validation_target_cuts(data, max_users, seed)}
    prompts = []
    for user in iter_progress(list(cuts), "reward table", show_progress):
        cut = cuts[user]
        evidence = evidence_block(user_evidence(ctx, resources, SCORING_SPLIT, cut.context)[0])
        future = {e.item_id for e in cut.future}
        ranks = {}
        for path in future_categories(data, cut):
            label = label_of_path.get(path)
            if label is None:
                continue
            listed = rank(cut, [path.split(" > ")[-1]], [path])
            found = [i for i, item in enumerate(listed, start=1) if item in future]
            if found:
                ranks[label] = found[0]
        history: dict[str, int] = {}
        for event in cut.context:
            if (label := label_of_path.get(data.items[event.item_id].category)) is not None:
                history[label] = history.get(label, 0) + 1
        targets = future_categories(data, cut)
        prompts.append(TablePrompt(
            user_id=user, prompt=expert_prompt(data, cut, tags_per_expert, vocabulary=vocabulary, evidence=evidence),
            level_targets=sorted(set().union(*(path_at_level(t, level) for t in targets))) if targets else [],
            leaf_targets=sorted(set().union(*(path_at_level(t, "leaf") for t in targets))) if targets else [],
            ranks=ranks, history_counts=history))
    schema = grounded_expert_schema(tags_per_expert, vocabulary, SERVED_RATIONALE_CHARS).model_json_schema()
    return RewardTable(dataset=dataset, level=level, depth=depth, per_tag=per_tag, labels=labels, sizes=sizes,
                       schema=schema, prompts=prompts)


def run_table_grpo(config: Any) -> Path:
    """GRPO (`recgpt.training.grpo.run_grpo`, its envelope and collapse stop) on a reward table's prompts and reward."""
    from recgpt.training.grpo import run_grpo  # deferred: TRL

    table = RewardTable.load(config.reward_table)
    gates = Gates(align=0.0, len=config.len_gate)  # no judge gates (see sample_round.ROUND_GATES)
    mix = AccuracyMix.dense() if config.reward == "dense" else AccuracyMix.sparse()
    return run_grpo(config, table_rewards(table, gates, mix), rows=table.rows(), schema=table.schema if config.constrained else None)


def main(argv: list[str]) -> int:
    """`python -m recgpt.training.reward_table RUN_CONFIG.json [KEY=VALUE ...]`: GRPO from a reward table on a machine
    with the training stack only (a lent GPU); `reward_table` is relative to the config file, e.g.
    `model=/tmp/sft-model output_dir=/tmp/grpo use_cpu=false`."""
    if not argv or argv[0] in ("-h", "--help"):
        print(main.__doc__)
        return 0 if argv else 2
    from recgpt.training.configs import GRPORunConfig
    from recgpt.training.sft import config_from_file

    try:
        config = config_from_file(GRPORunConfig, argv, ("reward_table",))
        if not config.reward_table:
            raise RecGPTError("the run config names no reward_table")
        final = run_table_grpo(config)
    except RecGPTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"GRPO-{config.shaping.upper()} done: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
