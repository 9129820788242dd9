"""The shipped trained policy: card, identity refusal, the merge into a servable folder, `--policy` resolution.

A tiny random model stands in for the base (the real one is 1 GB); the LoRA adapter has random non-zero weights so
that a merge that dropped it would be seen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from recgpt.tools.serving import policy as policy_module
from recgpt.tools.serving.model_prep import MARKER
from recgpt.tools.serving.policy import (
    PolicyError,
    load_card,
    merge_policy,
    resolve_policy,
    ship_policy,
    verify_policy,
)
from tests.unit.test_sft import tiny_model_dir

BASE = "smollm2-135m"  # a registry name; its weights are the tiny model's in these tests


def prepared_base(path: Path, gguf_sha256: str = "ab" * 32) -> Path:
    tiny_model_dir(path)
    (path / MARKER).write_text(json.dumps({"name": BASE, "gguf_sha256": gguf_sha256, "dtype": "bfloat16"}))
    return path


def trained_adapter(base: Path, out: Path) -> Path:
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(out)
    return out


@pytest.fixture()
def shipped(tmp_path: Path) -> tuple[Path, Path]:
    base = prepared_base(tmp_path / "base")
    adapter = trained_adapter(base, tmp_path / "run" / "final")
    policy_dir = tmp_path / "policies" / BASE / "office"
    card = ship_policy(adapter, base, policy_dir, "office-test", training={"sft": {"lora_r": 4}}, data_hash="office:123",
                       metrics={"cat_hr": 0.5}, dataset="office")
    assert card.lora["r"] == 4 and card.lora["target_modules"] == ["q_proj", "v_proj"] and card.base.name == BASE
    assert card.dataset == "office"
    assert load_card(policy_dir) == card
    assert json.loads((policy_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == BASE
    return base, policy_dir


def test_merge_writes_a_servable_folder_with_the_adapter_in_its_weights(shipped: tuple[Path, Path], tmp_path: Path) -> None:
    base, policy_dir = shipped
    out = merge_policy(policy_dir, base, tmp_path / "models" / "merged")
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors")) and (out / "tokenizer.json").is_file()
    marker = json.loads((out / MARKER).read_text())
    assert marker["name"] == BASE and marker["policy"]["name"] == "office-test"
    ids = torch.tensor([[3, 6, 7, 2]])
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)(ids).logits
    untrained = AutoModelForCausalLM.from_pretrained(base)(ids).logits
    assert not torch.allclose(merged, untrained, atol=1e-3)
    assert not list(out.parent.glob(".*staging*"))  # the staging folder is gone


def test_an_adapter_is_refused_on_another_base_and_when_tampered(shipped: tuple[Path, Path], tmp_path: Path) -> None:
    _, policy_dir = shipped
    other = prepared_base(tmp_path / "other", gguf_sha256="cd" * 32)
    with pytest.raises(PolicyError, match=r"was trained on smollm2-135m \(GGUF sha256 abababababab…\); .* is smollm2-135m \(GGUF sha256 cdcd"):
        verify_policy(policy_dir, other)
    bare = tiny_model_dir(tmp_path / "bare")
    with pytest.raises(PolicyError, match="not a model recgpt prepared"):
        verify_policy(policy_dir, bare)
    (policy_dir / "adapter_model.safetensors").write_bytes(b"not the trained weights")
    with pytest.raises(PolicyError, match="does not match the sha256"):
        verify_policy(policy_dir, shipped[0])


def test_shipping_refuses_large_adapters_and_unprepared_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = prepared_base(tmp_path / "base")
    adapter = trained_adapter(base, tmp_path / "adapter")
    monkeypatch.setattr(policy_module, "MAX_ADAPTER_BYTES", 100)
    with pytest.raises(PolicyError, match="at most 32 MiB"):
        ship_policy(adapter, base, tmp_path / "out", "x", {}, "h", {})
    monkeypatch.undo()
    with pytest.raises(PolicyError, match="not a model recgpt prepared"):
        ship_policy(adapter, tiny_model_dir(tmp_path / "bare"), tmp_path / "out", "x", {}, "h", {})
    other = prepared_base(tmp_path / "other")
    with pytest.raises(PolicyError, match="was trained on .*base, not on .*other"):
        ship_policy(adapter, other, tmp_path / "out", "x", {}, "h", {})
    with pytest.raises(PolicyError, match="not a LoRA adapter folder"):
        ship_policy(base, base, tmp_path / "out", "x", {}, "h", {})


def test_policy_resolution_trained_base_and_none_shipped(shipped: tuple[Path, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    base, policy_dir = shipped
    monkeypatch.setattr(policy_module, "prepare_model", lambda models_dir, name: base)
    models = tmp_path / "models"
    policies = policy_dir.parent.parent
    folder, what = resolve_policy(BASE, "trained", models, "office", policies)
    assert folder.parent == models and folder.name.endswith(load_card(policy_dir).adapter_sha256[:8])
    assert what == "trained policy office-test (trained on office)"
    again, _ = resolve_policy(BASE, "trained", models, "/data/office", policies)  # prepared once, reused; a folder's name
    assert again == folder
    assert resolve_policy(BASE, "base", models, "office", policies) == (base, f"base {BASE}")
    folder, what = resolve_policy(BASE, "trained", models, "movielens", policies)  # none ships for movielens
    assert folder == base and "no trained policy ships for it on movielens" in what
    folder, what = resolve_policy(BASE, "trained", models, "office", tmp_path / "no-policies")
    assert folder == base and "no trained policy ships" in what
    with pytest.raises(PolicyError, match="--policy must be one of trained, expert, base"):
        resolve_policy(BASE, "best", models, "office", policies)


def test_policies_are_looked_up_per_dataset_and_a_card_filed_under_another_is_refused(shipped: tuple[Path, Path]) -> None:
    _, policy_dir = shipped
    policies = policy_dir.parent.parent
    assert policy_module.shipped_policies(BASE, policies) == {"office": policy_dir}
    assert policy_module.shipped_policy(BASE, "office", policies) == policy_dir
    assert policy_module.shipped_policy(BASE, "movielens", policies) is None
    assert policy_module.shipped_policies("qwen2.5-coder-0.5b", policies) == {}
    misfiled = policies / BASE / "movielens"
    misfiled.mkdir()
    for name in ("policy.json", "adapter_model.safetensors", "adapter_config.json"):
        (misfiled / name).write_bytes((policy_dir / name).read_bytes())
    with pytest.raises(PolicyError, match=r"holds policy 'office-test', trained on office, not movielens: ship it under .*office"):
        policy_module.shipped_policy(BASE, "movielens", policies)


def test_a_card_written_before_datasets_reads_its_dataset_from_its_stages() -> None:
    card = policy_module.PolicyCard(name="x", base={"name": BASE, "gguf_sha256": "ab"}, adapter_sha256="cd", adapter_bytes=1,
                                    lora={}, training={"sft": {"dataset": "/data/mycat"}}, data_hash="mycat:1")
    assert card.dataset == "mycat"
    bare = policy_module.PolicyCard(name="x", base={"name": BASE, "gguf_sha256": "ab"}, adapter_sha256="cd", adapter_bytes=1,
                                    lora={}, data_hash="office:1")
    assert bare.dataset == "office"


def test_a_policy_served_off_its_training_dataset_is_named_in_one_line(tmp_path: Path) -> None:
    from recgpt.tools.serving.policy import POLICIES_DIR, load_card, trained_on
    from recgpt.tools.serving.policy_choice import served_policy_notice

    card = load_card(POLICIES_DIR / "qwen2.5-coder-0.5b" / "office")  # the shipped policy: trained on Office
    assert card.dataset == "office"
    identity = f"recgpt-policy@/models/Qwen2.5-Coder-0.5B-Instruct-policy-{card.adapter_sha256[:8]}[model.safetensors:1:2]<bfloat16>"
    assert trained_on(identity) == (card.name, "office")
    home = tmp_path / "home"
    assert served_policy_notice(identity, "office", home) is None and served_policy_notice(identity, "/data/office", home) is None
    warning = served_policy_notice(identity, "movielens", home)
    assert warning is not None and "trained on office, not movielens" in warning and "recgpt serve --dataset movielens" in warning
    assert "recgpt train chain --dataset movielens" in warning
    assert served_policy_notice("recgpt-policy@/models/Qwen2.5-Coder-0.5B-Instruct[model.safetensors:1:2]", "movielens", home) is None
    assert served_policy_notice("recgpt-policy@/models/X-policy-00000000[w:1:2]", "movielens", home) is None  # not shipped here


def test_the_expert_adapter_is_verified_and_named_by_its_module_identity(shipped: tuple[Path, Path], tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    base, policy_dir = shipped
    monkeypatch.setattr(policy_module, "prepare_model", lambda models_dir, name: base)
    policies = policy_dir.parent.parent
    found = policy_module.expert_adapter(tmp_path / "models", BASE, "office", policies)
    assert found is not None and found[0] == base and found[1] == policy_dir and found[2].name == "office-test"
    assert policy_module.lora_rank_limit(found[2]) == 8  # rank 4 -> vLLM's smallest accepted limit
    assert policy_module.expert_adapter(tmp_path / "models", "qwen2.5-coder-0.5b", "office", policies) is None
    assert policy_module.expert_adapter(tmp_path / "models", BASE, "movielens", policies) is None
    identity = f"recgpt-policy@{base}[model.safetensors:1:2]+recgpt-expert@{policy_dir}[adapter_model.safetensors:3:4]"
    card_training = json.loads((policy_dir / "policy.json").read_text())
    card_training["training"] = {"sft": {"dataset": "office"}}
    (policy_dir / "policy.json").write_text(json.dumps(card_training))
    assert policy_module.trained_on(identity, policies) == ("office-test", "office")
    assert policy_module.trained_on(f"recgpt-policy@{base}[model.safetensors:1:2]", policies) is None
    monkeypatch.setattr(policy_module, "prepare_model", lambda models_dir, name: prepared_base(tmp_path / "other", "cd" * 32))
    with pytest.raises(PolicyError, match="was trained on smollm2-135m"):
        policy_module.expert_adapter(tmp_path / "models", BASE, "office", policies)
