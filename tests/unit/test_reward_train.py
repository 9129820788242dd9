"""`recgpt train reward` end to end on a tiny random model: split, train, held-out ranking accuracy, run dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from recgpt.errors import RecGPTError
from recgpt.training.reward_model import GroupCollator, RewardGroup
from recgpt.training.reward_train import RewardRunConfig, load_groups, run_reward, split_groups
from tests.unit.seeding import seeded
from tests.unit.test_reward_model import WORDS, groups, tiny_tokenizer

pytestmark = pytest.mark.timeout(300)


def tiny_causal_dir(path: Path) -> Path:
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    seeded(lambda: LlamaForCausalLM(config)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_groups(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps(g) + "\n" for g in groups(n, seed=0)))
    return path


@pytest.mark.parametrize("loss", ["listwise", "pointwise"])
def test_reward_run_learns_the_order_on_held_out_groups(loss: str, tmp_path: Path) -> None:
    config = RewardRunConfig(model=str(tiny_causal_dir(tmp_path / "base")), groups=write_groups(tmp_path / "g.jsonl", 40),
                             output_dir=tmp_path / "run", loss_type=loss, num_train_epochs=12, learning_rate=5e-3,
                             per_device_train_batch_size=4,
                             max_length=32, save_steps=1000)
    result = run_reward(config)
    assert result["held_out_groups"] == 10 and result["train_groups"] == 30
    assert result["held_out_pairs"] == 30  # S>A, S>B, A>B per group
    assert result["ranking_accuracy_after"] == 1.0, result
    assert (Path(result["final"]) / "config.json").is_file()
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["loss_type"] == loss
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # the calibration sits between the training groups' Bad and not-Bad scores (what CRS's 0.5 gate then separates)
    assert metrics["train_score_mean_bad"] < metrics["align_offset"] < metrics["train_score_mean_not_bad"]
    assert metrics["calibration_samples"] == 30 * 3


def test_align_calibration_is_halfway_between_bad_and_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from recgpt.training import reward_train
    from recgpt.training.reward_train import align_calibration

    group = RewardGroup.model_validate({"prompt": "p", "samples": [{"text": t, "grade": g} for t, g in (
        ("s", "Superior"), ("a", "Average"), ("b", "Bad"), ("c", "Bad"))]})
    fake = {"p\ns": 3.0, "p\na": 1.0, "p\nb": -1.0, "p\nc": -3.0}
    monkeypatch.setattr(reward_train, "score_texts", lambda model, tok, texts, max_length: torch.tensor([fake[t] for t in texts]))
    calibration = align_calibration(None, None, [group], max_length=8)
    assert calibration["align_offset"] == pytest.approx(0.0)  # (mean(-1, -3) + mean(3, 1)) / 2
    assert calibration["train_score_mean_bad"] == -2.0 and calibration["train_score_mean_not_bad"] == 2.0


def test_split_is_by_group_seeded_and_disjoint() -> None:
    gs = [RewardGroup.model_validate(g) for g in groups(20, seed=3)]
    for i, g in enumerate(gs):
        g.prompt = f"prompt {i}"
    train, test = split_groups(gs, 0.25, seed=0)
    assert len(test) == 5 and len(train) == 15
    assert not {g.prompt for g in train} & {g.prompt for g in test}
    assert split_groups(gs, 0.25, seed=0)[1] == test


def test_malformed_groups_file_names_the_line(tmp_path: Path) -> None:
    path = write_groups(tmp_path / "g.jsonl", 2)
    path.write_text(path.read_text() + '{"prompt": "x", "samples": []}\n')
    with pytest.raises(RecGPTError, match=r"g.jsonl:3: not a reward group"):
        load_groups(path)
    with pytest.raises(RecGPTError, match="does not exist"):
        load_groups(tmp_path / "missing.jsonl")


def test_collator_cuts_long_prompts_from_the_left_so_the_answer_survives() -> None:
    tokenizer = tiny_tokenizer()
    group = {"prompt": " ".join(["pens"] * 50), "samples": [{"text": "great desk lamp", "grade": "Superior"}]}
    batch = GroupCollator(tokenizer, max_length=8)([group])
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 8
    assert tokenizer.decode(ids[-3:]) == "great desk lamp"


def test_shuffled_negatives_come_from_other_groups_and_are_bad() -> None:
    from recgpt.training.reward_data import add_shuffled_negatives
    from recgpt.training.reward_model import GradedSample
    from recgpt.training.reward_train import judge_only

    gs = [RewardGroup(prompt=f"p{i}", samples=[GradedSample(text=f"a{i}-{j}", grade="Superior") for j in range(2)]) for i in range(5)]
    assert add_shuffled_negatives(gs, 2, seed=3) == 10
    for i, g in enumerate(gs):
        negatives = [s for s in g.samples if s.source == "shuffled"]
        assert len(negatives) == 2 and all(s.grade == "Bad" for s in negatives)
        assert not any(s.text.startswith(f"a{i}-") for s in negatives)  # never its own answer
    assert [len(g.samples) for g in judge_only(gs)] == [2] * 5
    assert add_shuffled_negatives(gs[:1], 2, seed=0) == 0  # one group has no other user to borrow from


def test_mixed_groups_keeps_only_groups_that_order_something() -> None:
    from recgpt.training.reward_model import GradedSample, RewardGroup
    from recgpt.training.reward_train import mixed_groups

    alike = RewardGroup(prompt="p", samples=[GradedSample(text="a", grade="Bad"), GradedSample(text="b", grade="Bad")])
    mixed = RewardGroup(prompt="q", samples=[GradedSample(text="a", grade="Superior"), GradedSample(text="b", grade="Bad")])
    assert mixed_groups([alike, mixed, alike]) == [mixed]
