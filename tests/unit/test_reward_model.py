"""The graded reward trainer learns S > A > B with a tiny random model (seconds, CPU)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast, TrainingArguments

from recgpt.training.reward_model import GradedRewardTrainer, GroupCollator, RewardGroup, held_out_ranking_accuracy
from tests.unit.seeding import seeded

pytestmark = pytest.mark.timeout(300)

WORDS = ["great", "fine", "awful", "pens", "paper", "desk", "lamp", "for", "you", "the", "<pad>", "<unk>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(WORDS)}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>")


def tiny_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForSequenceClassification:
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    return seeded(lambda: LlamaForSequenceClassification(config))  # the test asserts a perfect held-out order


def groups(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        noun = rng.choice(["pens", "paper", "desk", "lamp"])
        out.append(RewardGroup(prompt=f"the {noun}", samples=[
            {"text": f"great {noun} for you", "grade": "Superior"},
            {"text": f"fine {noun} for you", "grade": "Average"},
            {"text": f"awful {noun} for you", "grade": "Bad"},
        ]).model_dump())
    return out


@pytest.mark.parametrize("loss_type", ["listwise", "pointwise"])
def test_graded_reward_trainer_learns_the_order(loss_type: str, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    held_out = [RewardGroup.model_validate(g) for g in groups(8, seed=99)]
    before = held_out_ranking_accuracy(model, tokenizer, held_out)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=15, learning_rate=5e-3,
                             logging_steps=5, save_strategy="no", report_to=[], use_cpu=True, seed=0, remove_unused_columns=False)
    trainer = GradedRewardTrainer(model=model, args=args, train_dataset=groups(32, seed=0),
                                  data_collator=GroupCollator(tokenizer), loss_type=loss_type)
    trainer.train()
    after = held_out_ranking_accuracy(model, tokenizer, held_out)
    assert after == 1.0, (before, after)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]


def test_group_collator_flattens_groups() -> None:
    tokenizer = tiny_tokenizer()
    batch = GroupCollator(tokenizer)(groups(2, seed=1))
    assert batch["input_ids"].shape[0] == 6
    assert batch["grades"].tolist() == [2, 1, 0, 2, 1, 0] and batch["groups"].tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        GroupCollator(tokenizer)([{"prompt": "x", "samples": []}])
