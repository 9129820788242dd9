"""GRPO with TRL on a tiny random model: it runs, logs every reward part, KL and grad norm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recgpt.training.grpo import GRPORunConfig, run_grpo
from recgpt.training.grpo_rewards import TagRewards, completion_text
from tests.unit.test_sft import tiny_model_dir

pytestmark = pytest.mark.timeout(600)


def test_grpo_runs_and_logs_every_component(tmp_path: Path) -> None:
    model = tiny_model_dir(tmp_path / "model")
    rewards = TagRewards(map_categories=lambda tags: [frozenset({"Pens"})] * len(tags), embed=lambda tags: np.eye(len(tags), 4),
                         align=lambda prompts, texts: [0.5 + 0.1 * (i % 2) for i in range(len(texts))])
    rows = [{"prompt": [{"role": "user", "content": "history pens tags"}], "target_categories": ["Pens"]} for _ in range(8)]
    config = GRPORunConfig(envelope="off", model=str(model), output_dir=tmp_path / "run", num_generations=2, max_completion_length=8,
                           per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=2, save_steps=2, beta=0.04,
                           lora_r=0, loss_type="grpo", temperature=0.8)
    final = run_grpo(config, rewards, rows)
    assert (final / "config.json").is_file()
    logs = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    keys = set().union(*(h.keys() for h in logs))
    for name in ("crs", "r_acc", "r_align", "r_div", "r_len", "gate_align", "gate_div", "gate_len"):
        assert f"rewards/{name}/mean" in keys, sorted(keys)
    assert "kl" in keys and "grad_norm" in keys
    rollouts = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert rollouts and {"batch", "tags", "categories", "targets", "parts", "crs", "sum"} <= set(rollouts[0])


class LengthRewards(TagRewards):
    """A reward the tiny random model's rollouts differ on (their tags never parse): the completion's length."""

    def functions(self, shaping: str):  # type: ignore[override]
        def length(prompts, completions, **_):  # type: ignore[no-untyped-def]
            return [float(len(completion_text(c))) for c in completions]

        return [length], [1.0]


def test_grpo_from_an_sft_adapter_trains_that_adapter_and_returns_one(tmp_path: Path) -> None:
    """Shipping needs one adapter on the base: GRPO started from an SFT LoRA output continues that adapter."""
    from safetensors.torch import load_file

    from recgpt.training.sft import SFTRunConfig, run_sft
    from tests.unit.test_sft import rows as sft_rows

    model = tiny_model_dir(tmp_path / "model")
    sft = run_sft(SFTRunConfig(model=str(model), output_dir=tmp_path / "sft", num_train_epochs=1, per_device_train_batch_size=4,
                               gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8, save_steps=100), sft_rows(4))
    rows = [{"prompt": [{"role": "user", "content": "history pens tags"}], "target_categories": ["Pens"]} for _ in range(4)]
    config = GRPORunConfig(envelope="off", model=str(sft), output_dir=tmp_path / "grpo", num_generations=2, max_completion_length=8,
                           per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=2, save_steps=2, beta=0.0,
                           learning_rate=1e-2, loss_type="grpo", temperature=0.8)
    final = run_grpo(config, LengthRewards(map_categories=lambda tags: [], embed=lambda tags: np.eye(len(tags), 4),
                                           align=lambda prompts, texts: [1.0] * len(texts)), rows)
    assert (final / "adapter_config.json").is_file() and not (final / "config.json").is_file()
    before, after = load_file(sft / "adapter_model.safetensors"), load_file(final / "adapter_model.safetensors")
    assert before.keys() == after.keys() and any(not (before[k] == after[k]).all() for k in before)


def test_a_grpo_run_resumes_on_another_machine_from_the_adapter_and_trainer_state_alone(tmp_path: Path) -> None:
    """What `scripts/train_chain.sh keep-checkpoints` keeps in the ledger (no optimiser or scheduler state) resumes:
    the step count and data position come back, and the constant learning rate is the same after the resume."""
    import shutil

    from recgpt.training.sft import SFTRunConfig, run_sft
    from tests.unit.test_sft import rows as sft_rows

    model = tiny_model_dir(tmp_path / "model")
    sft = run_sft(SFTRunConfig(model=str(model), output_dir=tmp_path / "sft", num_train_epochs=1, per_device_train_batch_size=4,
                               gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8, save_steps=100), sft_rows(4))
    rows = [{"prompt": [{"role": "user", "content": f"history pens tags {i}"}], "target_categories": ["Pens"]} for i in range(6)]
    rewards = LengthRewards(map_categories=lambda tags: [], embed=lambda tags: np.eye(len(tags), 4), align=lambda prompts, texts: [1.0] * len(texts))

    def config(out: Path) -> GRPORunConfig:
        return GRPORunConfig(envelope="off", model=str(sft), output_dir=out, num_generations=2, max_completion_length=8,
                             per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=3, save_steps=1, beta=0.0,
                             learning_rate=1e-3, loss_type="grpo", temperature=0.8)

    run_grpo(config(tmp_path / "first"), rewards, rows)
    kept = tmp_path / "second" / "checkpoint-2"  # a fresh machine: the kept files only
    kept.mkdir(parents=True)
    for name in ("adapter_model.safetensors", "adapter_config.json", "trainer_state.json", "rng_state.pth"):
        shutil.copy(tmp_path / "first" / "checkpoint-2" / name, kept / name)
    run_grpo(config(tmp_path / "second"), rewards, rows)
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and metrics["resumed_from"].endswith("checkpoint-2")
    rates = [h["learning_rate"] for h in metrics["log_history"] if "learning_rate" in h]
    assert rates and all(rate == 1e-3 for rate in rates)


def test_the_stable_envelope_refuses_the_settings_that_collapsed(tmp_path: Path) -> None:
    from recgpt.errors import RecGPTError
    from recgpt.training.grpo import stability_problems

    assert stability_problems(GRPORunConfig(model="m", output_dir=tmp_path / "run")) == []  # the defaults are inside
    old = GRPORunConfig(model="m", output_dir=tmp_path / "run", num_generations=4, per_device_train_batch_size=4,
                        gradient_accumulation_steps=1, learning_rate=5e-5, beta=0.0, loss_type="grpo", collapse_share=0.0)
    problems = " ".join(stability_problems(old))
    for part in ("num_generations 4 < 8", "1 prompts per update < 16", "learning_rate 5e-05 > 1e-05", "beta 0 outside",
                 "loss_type grpo", "collapse stop is off"):
        assert part in problems, problems
    with pytest.raises(RecGPTError, match="outside the stable envelope"):
        run_grpo(old, TagRewards(map_categories=lambda t: [], embed=lambda t: np.eye(len(t), 4), align=lambda p, t: [1.0] * len(t)), [])


def test_the_collapse_stop_needs_a_streak_above_the_share() -> None:
    from recgpt.training.grpo import CollapseStop

    stop = CollapseStop(share=0.5, patience=2)
    key = "rewards/top_category_share/mean"
    assert not stop.observe(1, {key: 0.6}) and not stop.observe(2, {key: 0.4})  # the streak breaks
    assert not stop.observe(3, {key: 0.5}) and stop.observe(4, {key: 0.9})
    assert stop.stopped_at == 4 and "90%" in stop.reason
    assert not CollapseStop(share=0.0, patience=1).observe(1, {key: 1.0})  # 0: monitor only
    assert not CollapseStop(share=0.5, patience=1).observe(1, {"loss": 1.0})  # nothing logged: nothing decided


def test_an_adapter_start_with_a_kl_term_is_merged_so_the_reference_is_that_policy(tmp_path: Path) -> None:
    from recgpt.training.grpo import starting_policy
    from recgpt.training.sft import SFTRunConfig, run_sft
    from tests.unit.test_sft import rows as sft_rows

    model = tiny_model_dir(tmp_path / "model")
    sft = run_sft(SFTRunConfig(model=str(model), output_dir=tmp_path / "sft", num_train_epochs=1, per_device_train_batch_size=4,
                               gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8, save_steps=100), sft_rows(4))
    start, peft_config = starting_policy(GRPORunConfig(model=str(sft), output_dir=tmp_path / "grpo", beta=0.01, lora_r=4))
    assert start == str(tmp_path / "grpo" / "start-merged") and (Path(start) / "config.json").is_file()
    assert peft_config is not None and peft_config.r == 4


def char_model_dir(path: Path) -> Path:
    """A tiny random model whose tokenizer spells text one character at a time, so a JSON grammar can be decoded."""
    import string

    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|end|>"]
    vocab = {w: i for i, w in enumerate(specials + [c for c in string.printable if c not in "\t\n\r\x0b\x0c"])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    raw.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="<|end|>")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0, eos_token_id=2, bos_token_id=None)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_constrained_rollouts_are_answers_serving_could_give(tmp_path: Path) -> None:
    """With the serving schema, every rollout of a random model is a valid grounded answer naming catalogue labels,
    written compactly as the server writes it; the same model decoding freely writes none."""
    from pydantic import BaseModel, ValidationError

    from recgpt.agents.expert import grounded_expert_schema
    from recgpt.tools.retrieval.grounding import CategoryVocabulary

    labels = ("Gel Pens", "Notebooks")
    schema = grounded_expert_schema(1, CategoryVocabulary(level="leaf", labels=labels, paths=tuple(f"Office > {x}" for x in labels)),
                                    rationale_chars=0)
    seen: list[str] = []

    class Recording(TagRewards):
        def functions(self, shaping: str):  # type: ignore[override]
            def record(prompts, completions, **_):  # type: ignore[no-untyped-def]
                seen.extend(completion_text(c) for c in completions)
                return [float(len(completion_text(c)) % 3) for c in completions]

            return [record], [1.0]

    def run(out: Path, constrained: type[BaseModel] | None) -> None:
        config = GRPORunConfig(envelope="off", model=str(char_model_dir(tmp_path / "model")), output_dir=out, num_generations=2,
                               max_completion_length=160, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                               max_steps=2, save_steps=2, beta=0.0, lora_r=0, loss_type="grpo", temperature=1.0)
        run_grpo(config, Recording(map_categories=lambda t: [], embed=lambda t: np.eye(len(t), 4), align=lambda p, t: [1.0] * len(t)),
                 [{"prompt": "pens and paper"} for _ in range(4)], schema=constrained)

    run(tmp_path / "constrained", schema)
    assert len(seen) == 4
    for text in seen:
        answer = schema.model_validate_json(text)  # raises on anything serving could not have given
        assert all(tag.category in labels for tag in answer.tags) and '": ' not in text and ", " not in text.split('"tag"')[0]
    seen.clear()
    run(tmp_path / "free", None)
    for text in seen:
        with pytest.raises(ValidationError):
            schema.model_validate_json(text)


@pytest.mark.slow
def test_a_stable_envelope_run_from_an_sft_adapter_with_constrained_rollouts(tmp_path: Path) -> None:
    """The issue-34 settings end to end on a tiny model: the default (stable) envelope, so G = 8, 16 prompts per
    update, LoRA lr 1e-5, KL beta .01 towards the SFT policy (merged first), loss dapo, epsilon_high .28, rollouts
    under the serving grammar, and the collapse monitor logging. One optimiser step; CPU only proves the wiring."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from recgpt.agents.expert import grounded_expert_schema
    from recgpt.tools.retrieval.grounding import CategoryVocabulary
    from recgpt.training.grpo import stability_problems

    base = char_model_dir(tmp_path / "model")
    sft = tmp_path / "sft"  # an SFT adapter on the char model, as the chain hands GRPO one
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
                   ).save_pretrained(sft)
    labels = ("Gel Pens", "Notebooks")
    schema = grounded_expert_schema(1, CategoryVocabulary(level="leaf", labels=labels, paths=tuple(f"Office > {x}" for x in labels)),
                                    rationale_chars=0)
    config = GRPORunConfig(model=str(sft), output_dir=tmp_path / "grpo", max_completion_length=120, max_steps=1,
                           save_steps=1, lora_r=4, temperature=1.0)
    assert stability_problems(config) == [] and config.envelope == "stable"
    assert (config.num_generations, config.loss_type, config.epsilon_high, config.beta) == (8, "dapo", 0.28, 0.01)
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps // config.num_generations >= 16
    assert config.learning_rate <= 1e-5
    rewards = TagRewards(map_categories=lambda tags: [frozenset({tag}) for tag in tags], embed=lambda t: np.eye(len(t), 4),
                         align=lambda p, t: [1.0] * len(t))
    final = run_grpo(config, rewards, [{"prompt": f"pens and paper {n}", "target_categories": ["Office > Gel Pens"]}
                                       for n in range(16)], schema=schema)
    assert final.exists() and (tmp_path / "grpo" / "start-merged" / "config.json").is_file()  # KL anchored to the SFT policy
    logs = json.loads((tmp_path / "grpo" / "metrics.json").read_text())["log_history"]
    keys = set().union(*(h.keys() for h in logs))
    assert "kl" in keys and any("top_category_share" in k for k in keys), sorted(keys)
    rollouts = [json.loads(line) for line in (tmp_path / "grpo" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) >= 128 // 16 and all(r["tags"] for r in rollouts)  # every constrained rollout parses to tags
