"""`recgpt train reward`: fit the Judge-as-a-Reward model on graded groups, listwise (default) or pointwise.

Groups are split by prompt into train / held-out (seeded); the run reports held-out ranking accuracy
(share of correctly ordered different-grade pairs of one prompt) so the listwise and pointwise losses
can be compared on the same split. The value head is transformers' `AutoModelForSequenceClassification`
(num_labels=1) on the policy's own base model; the reward in GRPO is sigmoid(score).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from recgpt.errors import RecGPTError
from recgpt.training.configs import RewardRunConfig
from recgpt.training.listwise import GRADE_VALUE
from recgpt.training.reward_model import GradedRewardTrainer, GroupCollator, RewardGroup, held_out_ranking_accuracy, score_texts
from recgpt.training.runs import finish_run, latest_checkpoint, start_run


def load_groups(path: Path) -> list[RewardGroup]:
    if not Path(path).is_file():
        raise RecGPTError(f"reward groups file {path} does not exist; create it with `recgpt train reward-data`")
    groups = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                groups.append(RewardGroup.model_validate_json(line))
            except ValueError as exc:
                raise RecGPTError(f"{path}:{n}: not a reward group ({str(exc).splitlines()[0]})") from None
    return groups


def split_groups(groups: list[RewardGroup], held_out: float, seed: int) -> tuple[list[RewardGroup], list[RewardGroup]]:
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(groups) * held_out)) if len(groups) > 1 else 0
    test = [groups[i] for i in sorted(order[:n_test])]
    train = [groups[i] for i in sorted(order[n_test:])]
    return train, test


def load_reward_model(path: str, dtype: str = "float32"):  # -> (model, tokenizer)
    """A value-head model and its tokenizer, set up for scoring (left truncation, a pad token).

    float32 by default, like TRL's trainers: since transformers v5 `from_pretrained` keeps the
    checkpoint's dtype (bf16 for the default model), and bf16 on CPUs without AVX512-BF16 is
    emulated — the first reward-model run here spent minutes per step on one core.
    """
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=getattr(torch, dtype) if dtype != "auto" else "auto")
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def run_reward(config: RewardRunConfig) -> dict[str, Any]:
    """Train; returns metrics incl. held-out ranking accuracy before and after training."""
    from datasets import Dataset as HFDataset  # deferred: datasets (seconds to import; only training needs it)

    from recgpt.training.trainer_configs import RewardTrainerConfig, trainer_config  # deferred: trl (only training needs it)

    out = start_run(config.output_dir, config)
    train, test = split_groups(load_groups(config.groups), config.held_out, config.seed)
    if config.mixed_only:
        train = mixed_groups(train)
    model, tokenizer = load_reward_model(config.model, config.dtype)
    before = held_out_ranking_accuracy(model, tokenizer, test, max_length=config.max_length) if test else float("nan")
    args = trainer_config(RewardTrainerConfig, config, save_total_limit=2, report_to=[], remove_unused_columns=False)
    rows = [g.model_dump() for g in train]
    trainer = GradedRewardTrainer(model=model, args=args, train_dataset=HFDataset.from_list(rows),
                                  data_collator=GroupCollator(tokenizer, max_length=config.max_length), loss_type=config.loss_type)
    resumed_from = latest_checkpoint(out)
    trainer.train(resume_from_checkpoint=resumed_from)
    after = held_out_ranking_accuracy(model, tokenizer, test, max_length=config.max_length) if test else float("nan")
    judged = judge_only(test)  # the pairs the judge itself ordered (no in-batch negatives)
    judge_pairs = _ordered_pairs(judged)
    judge_after = held_out_ranking_accuracy(model, tokenizer, judged, max_length=config.max_length) if judge_pairs else float("nan")
    calibration = align_calibration(model, tokenizer, train, max_length=config.max_length)
    final = finish_run(out, trainer, tokenizer, resumed_from, train_groups=len(train), held_out_groups=len(test), **calibration,
                       held_out_pairs=_ordered_pairs(test), ranking_accuracy_before=before, ranking_accuracy_after=after,
                       held_out_judge_pairs=judge_pairs, ranking_accuracy_after_judge_pairs=judge_after, loss_type=config.loss_type)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"final": str(final), **{k: metrics[k] for k in ("train_groups", "held_out_groups", "held_out_pairs", "ranking_accuracy_before",
                                                           "ranking_accuracy_after", "held_out_judge_pairs",
                                                           "ranking_accuracy_after_judge_pairs", "loss_type")}}


def align_calibration(model: Any, tokenizer: Any, groups: list[RewardGroup], max_length: int) -> dict[str, Any]:
    """Where the reward model's "not Bad" starts, measured on its *training* groups.

    A listwise loss only orders scores within a group: adding a constant to every score leaves it unchanged, so
    sigmoid(score) has no fixed meaning and CRS's alignment gate (reward >= 0.5) could pass every answer or none.
    GRPO therefore scores sigmoid(score - align_offset), with the offset halfway between the mean score of the
    Bad samples and the mean of the rest: the gate then asks "does the reward model rank this above a Bad
    answer?". Training groups only, so no held-out pair informs it.
    """
    samples = [(g.prompt + "\n" + s.text, s.grade) for g in groups for s in g.samples]
    if not samples:
        return {"align_offset": 0.0}
    scores = score_texts(model, tokenizer, [text for text, _ in samples], max_length=max_length).tolist()
    bad = [v for v, (_, grade) in zip(scores, samples) if grade == "Bad"]
    rest = [v for v, (_, grade) in zip(scores, samples) if grade != "Bad"]
    offset = (sum(bad) / len(bad) + sum(rest) / len(rest)) / 2 if bad and rest else 0.0
    return {"align_offset": offset, "train_score_mean_bad": sum(bad) / len(bad) if bad else None,
            "train_score_mean_not_bad": sum(rest) / len(rest) if rest else None, "calibration_samples": len(samples)}


def mixed_groups(groups: list[RewardGroup]) -> list[RewardGroup]:
    """The groups whose samples do not all share one grade."""
    return [g for g in groups if len({s.grade for s in g.samples}) > 1]


def judge_only(groups: list[RewardGroup]) -> list[RewardGroup]:
    """The groups restricted to judge-graded samples (in-batch negatives removed)."""
    out = []
    for g in groups:
        samples = [s for s in g.samples if s.source == "judge"]
        if samples:
            out.append(g.model_copy(update={"samples": samples}))
    return out


def _ordered_pairs(groups: list[RewardGroup]) -> int:
    total = 0
    for g in groups:
        values = [GRADE_VALUE[s.grade] for s in g.samples]
        total += sum(1 for a in values for b in values if a > b)
    return total
