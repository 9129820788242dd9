"""SFT with TRL on a tiny random model: loss falls, the run directory is complete, resume works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from recgpt.training.sft import SFTRunConfig, run_sft
from tests.unit.seeding import seeded

pytestmark = pytest.mark.timeout(600)

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def tiny_model_dir(path: Path, seed: int = 0) -> Path:
    words = ["<pad>", "<unk>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "history", "pens", "paper", "tags", "{", "}", "gel", "copy"]
    raw = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="<|end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, eos_token_id=2, bos_token_id=None)
    seeded(lambda: LlamaForCausalLM(config), seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def rows(n: int) -> list[dict]:
    return [{"prompt": [{"role": "system", "content": "history pens paper"}, {"role": "user", "content": "tags"}],
             "completion": [{"role": "assistant", "content": "{ gel pens copy paper }"}]} for _ in range(n)]


@pytest.mark.parametrize("lora_r", [0, 4])
def test_sft_trains_and_writes_a_run_directory(lora_r: int, tmp_path: Path) -> None:
    model = tiny_model_dir(tmp_path / "model")
    config = SFTRunConfig(model=str(model), output_dir=tmp_path / "run", num_train_epochs=4, learning_rate=5e-3,
                          per_device_train_batch_size=4, gradient_accumulation_steps=1, max_length=64, lora_r=lora_r, lora_alpha=8,
                          logging_steps=2, save_steps=4)
    final = run_sft(config, rows(16))
    assert (final / ("adapter_config.json" if lora_r else "config.json")).is_file()
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["lora_r"] == lora_r
    losses = [h["loss"] for h in json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert any((tmp_path / "run").glob("checkpoint-*"))
    # a second call resumes from the last checkpoint instead of starting over
    config.num_train_epochs = 5
    run_sft(config, rows(16))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-16") and metrics["global_step"] == 20


def test_exported_rows_train_elsewhere_from_the_config_file_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU path: `--export-rows` writes the examples and a config; `python -m recgpt.training.sft CONFIG k=v`
    trains on them (fields overridden by type), resuming like any run."""
    from recgpt.training import sft

    model = tiny_model_dir(tmp_path / "model")
    config = SFTRunConfig(model="unused-here", output_dir=tmp_path / "nowhere", max_length=64, lora_r=4, lora_alpha=8)
    monkeypatch.setattr(sft, "build_sft_rows", lambda c: rows(8))  # instead of a dataset's cuts
    written = sft.export_rows(config, tmp_path / "ship" / "rows.jsonl")
    assert written["rows"] == 8 and len(written["sha256"]) == 64
    exported = json.loads(Path(written["config"]).read_text())
    assert exported["rows_file"] == "rows.jsonl" and exported["lora_r"] == 4
    monkeypatch.undo()  # from here the rows come from the exported file
    code = sft.main([written["config"], f"model={model}", f"output_dir={tmp_path / 'gpu-run'}", "use_cpu=true",
                     "batch_size=4", "grad_accum=1", "learning_rate=5e-3", "max_steps=2", "precision=float32"])
    assert code == 0 and (tmp_path / "gpu-run" / "final" / "adapter_config.json").is_file()
    used = json.loads((tmp_path / "gpu-run" / "run_config.json").read_text())
    # keys are the field's or its option's name (`batch_size` is `--batch-size`, TRL's per_device_train_batch_size)
    assert used["per_device_train_batch_size"] == 4 and used["learning_rate"] == 5e-3 and used["use_cpu"] is True
    assert used["rows_file"] == str(tmp_path / "ship" / "rows.jsonl")
    assert sft.main([written["config"], "no_such_field=1"]) == 2
    legacy = {"epochs": 1.0, "batch_size": 4, "grad_accum": 1, "out": "x", "cpu": True}  # configs exported before TRL's names
    assert {sft.field_names(SFTRunConfig)[key] for key in legacy} == {"num_train_epochs", "per_device_train_batch_size",
                                                           "gradient_accumulation_steps", "output_dir", "use_cpu"}
    assert sft.main([written["config"], "use_cpu=maybe"]) == 2  # one line on stderr, as for an unknown field


def test_export_merges_a_lora_adapter_into_a_plain_model(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from recgpt.errors import RecGPTError
    from recgpt.training.export import export_model

    model = tiny_model_dir(tmp_path / "model")
    config = SFTRunConfig(model=str(model), output_dir=tmp_path / "run", num_train_epochs=2, learning_rate=5e-2,
                          per_device_train_batch_size=4, gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8,
                          logging_steps=2, save_steps=100)
    final = run_sft(config, rows(8))
    out = export_model(final, tmp_path / "export")
    assert not (out / "adapter_config.json").exists() and (out / "config.json").is_file()
    assert json.loads((out / "recgpt_export.json").read_text())["kind"] == "lora-merged"
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(model)
    ids = torch.tensor([[3, 6, 7, 2]])
    assert not torch.allclose(merged(ids).logits, base(ids).logits)  # the adapter's update is in the weights
    with pytest.raises(RecGPTError):
        export_model(tmp_path / "nothing", tmp_path / "x")


def test_an_interrupted_lora_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed mid-training (here: interrupted at step 6, after the step-4 checkpoint) is rerun with the same
    command: it resumes at step 4, not at 0, and ends where an uninterrupted run ends."""
    from safetensors.torch import load_file
    from trl import SFTTrainer

    model = tiny_model_dir(tmp_path / "model")

    def config(run: str) -> SFTRunConfig:
        return SFTRunConfig(model=str(model), output_dir=tmp_path / run, num_train_epochs=4, learning_rate=5e-3,
                            per_device_train_batch_size=4, gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8,
                            logging_steps=2, save_steps=4)

    reference = run_sft(config("whole"), rows(16))
    original_step = SFTTrainer.training_step

    def interrupted_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.state.global_step == 6:
            raise KeyboardInterrupt("killed")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "training_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        run_sft(config("cut"), rows(16))
    assert not (tmp_path / "cut" / "final").exists() and (tmp_path / "cut" / "checkpoint-4").is_dir()
    monkeypatch.setattr(SFTTrainer, "training_step", original_step)
    final = run_sft(config("cut"), rows(16))
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-4") and metrics["global_step"] == 16
    resumed, whole = load_file(final / "adapter_model.safetensors"), load_file(reference / "adapter_model.safetensors")
    assert resumed.keys() == whole.keys()
    for key in whole:
        assert (resumed[key] - whole[key]).abs().max() < 1e-5, key
