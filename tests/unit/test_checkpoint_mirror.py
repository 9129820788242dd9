"""A training stage longer than a session resumes on a fresh machine from the checkpoint the chain kept in its ledger:
a real TRL DPO run on a tiny model, cut after its first checkpoint, mirrored in bf16, its run folder deleted, restored
and resumed, ends where an uninterrupted run ends (within the bf16 rounding); the chain keeps the mirror only while the
stage is unfinished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recgpt.training.checkpoint_mirror import keep_checkpoint, mirrored_step, restore_checkpoint
from recgpt.training.runs import latest_checkpoint
from tests.unit.test_sft import tiny_model_dir

pytestmark = pytest.mark.timeout(600)


def _adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _pair(i: int) -> dict:
    """In the tiny model's words, chosen and rejected apart (the same tokens would give DPO no gradient)."""
    prompt = [{"role": "system", "content": "history pens" if i % 2 else "history paper"}, {"role": "user", "content": "tags"}]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": "{ gel pens }"}],
            "rejected": [{"role": "assistant", "content": "{ copy paper copy }"}]}


def test_a_dpo_run_cut_mid_way_resumes_from_its_mirrored_checkpoint_on_a_fresh_machine(tmp_path: Path) -> None:
    import torch

    from recgpt.training.configs import DPORunConfig
    from recgpt.training.dpo import run_dpo

    model = tiny_model_dir(tmp_path / "model")
    rows = tmp_path / "dpo-crs.jsonl"
    rows.write_text("".join(json.dumps(_pair(i)) + "\n" for i in range(8)))

    def config(out: Path) -> DPORunConfig:
        return DPORunConfig(model=str(model), rows_file=str(rows), output_dir=out, max_steps=4, per_device_train_batch_size=2,
                            gradient_accumulation_steps=1, max_length=64, lora_r=4, lora_alpha=8, save_steps=2,
                            learning_rate=1e-2)

    whole = run_dpo(config(tmp_path / "whole"))
    cut = tmp_path / "cut"
    run_dpo(config(cut))
    shutil.rmtree(cut / "checkpoint-4")  # as if killed between step 2 and step 4
    shutil.rmtree(cut / "final")
    at_two = _adapter(cut / "checkpoint-2")
    mirror = tmp_path / "ledger" / "checkpoints" / "dpo-crs-1"
    assert keep_checkpoint(cut, mirror) == 2 and mirrored_step(mirror) == 2
    manifest = json.loads((mirror / "mirror.json").read_text())
    assert {"adapter_model.safetensors", "optimizer.pt"} <= set(manifest["bf16_from_fp32"])
    assert (mirror / "adapter_model.safetensors").stat().st_size < 0.7 * (cut / "checkpoint-2" / "adapter_model.safetensors").stat().st_size
    assert all(t.dtype == torch.bfloat16 for t in _adapter(mirror).values())

    shutil.rmtree(cut)  # a fresh machine: the ledger only
    assert restore_checkpoint(mirror, cut) == 2 and latest_checkpoint(cut) == str(cut / "checkpoint-2")
    assert all(t.dtype == torch.float32 for t in _adapter(cut / "checkpoint-2").values())
    assert restore_checkpoint(mirror, cut) is None  # the run already has it
    resumed = run_dpo(config(cut))
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["resumed_from"] == str(cut / "checkpoint-2")
    a, b = _adapter(whole), _adapter(resumed)
    assert set(a) == set(b)
    moved = max(float((b[k] - at_two[k]).abs().max()) for k in b)
    off = max(float((b[k] - a[k]).abs().max()) for k in b)
    assert moved > 0 and off < 0.1 * moved  # it trained steps 3-4 and landed where the uninterrupted run did


def test_only_complete_checkpoints_are_resumed_or_mirrored_and_an_older_mirror_is_not_rewritten(tmp_path: Path) -> None:
    run, mirror = tmp_path / "run", tmp_path / "mirror"
    for step, complete in ((4, True), (8, True), (12, False)):  # 12: killed while the trainer was writing it
        folder = run / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "scheduler.pt").write_bytes(b"s" * step)
        if complete:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (run / ".checkpoint-16.restoring").mkdir()  # a restore a kill cut short is not a checkpoint either
    assert latest_checkpoint(run) == str(run / "checkpoint-8")
    assert keep_checkpoint(run, mirror) == 8 and (mirror / "scheduler.pt").read_bytes() == b"s" * 8
    shutil.rmtree(run / "checkpoint-8")
    assert keep_checkpoint(run, mirror) == 8 and mirrored_step(mirror) == 8  # step 4 does not replace step 8
    assert keep_checkpoint(tmp_path / "none", tmp_path / "m2") is None and restore_checkpoint(tmp_path / "m2", run) is None
    assert restore_checkpoint(mirror, run) == 8 and (run / "checkpoint-8" / "trainer_state.json").is_file()


def test_the_chain_keeps_a_stopped_stages_checkpoint_until_the_stage_ends(tmp_path: Path) -> None:
    from recgpt.training.chain import ChainConfig, plan, run_chain
    from tests.unit.test_chain import FakeExecutor

    cfg = ChainConfig(dataset="office", runs=tmp_path / "runs", ledger=tmp_path / "ledger", full_graph=False)
    dpo = next(s for s in plan(cfg, reuse_shipped_sft=True) if s.name == "dpo-crs-1")
    assert dpo.checkpoints == cfg.runs / "dpo-crs-1"
    run, mirror = dpo.checkpoints, cfg.ledger / "checkpoints" / "dpo-crs-1"
    seen: list[str | None] = []

    class Trainer(FakeExecutor):
        def __init__(self, stop: bool) -> None:
            super().__init__()
            self.stop = stop

        def run(self, args: list[str]) -> None:
            if args[:2] != ["train", "dpo"]:
                return
            seen.append(latest_checkpoint(run))
            folder = run / ("checkpoint-4" if self.stop else "checkpoint-8")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "trainer_state.json").write_text("{}")
            if self.stop:
                raise KeyboardInterrupt

    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_chain(cfg, [dpo], Trainer(stop=True), {}, say=said.append)
    assert mirrored_step(mirror) == 4 and "step-4 checkpoint kept" in said[-1]
    shutil.rmtree(cfg.runs)  # a fresh machine
    run_chain(cfg, [dpo], Trainer(stop=False), {}, say=said.append)
    assert seen == [None, str(run / "checkpoint-4")] and any("resuming from step 4" in line for line in said)
    assert not mirror.exists()  # the stage ended: its mirror goes (its final adapter is what the ledger keeps)
