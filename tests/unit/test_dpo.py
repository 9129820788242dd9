"""DPO with TRL on a tiny random model: it trains a LoRA on an offline round's pairs, and bad pair files get one clear
error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.errors import RecGPTError
from recgpt.training.dpo import load_pairs, run_dpo
from tests.unit.test_sft import tiny_model_dir

pytestmark = pytest.mark.timeout(600)


def _pair(i: int) -> dict:
    prompt = [{"role": "system", "content": f"user {i} bought pens and paper"}, {"role": "user", "content": "tags"}]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": '{"tags":[{"tag":"gel pens"}]}'}],
            "rejected": [{"role": "assistant", "content": '{"tags":[{"tag":"fax machine"}]}'}], "user_id": str(i)}


def test_dpo_trains_a_lora_on_round_pairs(tmp_path: Path) -> None:
    from recgpt.training.configs import DPORunConfig

    model = tiny_model_dir(tmp_path / "model")
    rows = tmp_path / "dpo-crs.jsonl"
    rows.write_text("".join(json.dumps(_pair(i)) + "\n" for i in range(4)))
    config = DPORunConfig(model=str(model), rows_file=str(rows), output_dir=tmp_path / "run", max_steps=2,
                          per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8,
                          save_steps=2, learning_rate=1e-2)
    final = run_dpo(config)
    assert (final / "adapter_config.json").is_file()
    logs = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    keys = set().union(*(h.keys() for h in logs))
    assert any(k.startswith("rewards/") for k in keys), sorted(keys)  # TRL's chosen/rejected reward logs


def test_pair_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": [], "chosen": []}\n')
    with pytest.raises(RecGPTError, match="bad.jsonl:1: a DPO pair needs prompt, chosen, rejected"):
        load_pairs(bad)
    bad.write_text("{not json\n")
    with pytest.raises(RecGPTError, match="bad.jsonl:1: not JSON"):
        load_pairs(bad)
    bad.write_text("\n")
    with pytest.raises(RecGPTError, match="holds no pairs"):
        load_pairs(bad)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_pair(0)) + "\n")
    assert set(load_pairs(good)[0]) == {"prompt", "chosen", "rejected"}  # extra keys (user_id) left out
