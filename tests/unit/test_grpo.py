"""GRPO with TRL on a tiny random model: it runs, logs every reward part, KL and grad norm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recgpt.training.grpo import GRPORunConfig, run_grpo
from recgpt.training.grpo_rewards import TagRewards
from tests.unit.test_sft import tiny_model_dir

pytestmark = pytest.mark.timeout(600)


def test_grpo_runs_and_logs_every_component(tmp_path: Path) -> None:
    model = tiny_model_dir(tmp_path / "model")
    rewards = TagRewards(map_categories=lambda tags: [frozenset({"Pens"})] * len(tags), embed=lambda tags: np.eye(len(tags), 4),
                         align=lambda prompts, texts: [0.5 + 0.1 * (i % 2) for i in range(len(texts))])
    rows = [{"prompt": [{"role": "user", "content": "history pens tags"}], "target_categories": ["Pens"]} for _ in range(8)]
    config = GRPORunConfig(model=str(model), output_dir=tmp_path / "run", num_generations=2, max_completion_length=8,
                           batch_size=2, max_steps=2, save_steps=2, beta=0.04)
    final = run_grpo(config, rewards, rows)
    assert (final / "config.json").is_file()
    logs = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    keys = set().union(*(h.keys() for h in logs))
    for name in ("crs", "r_acc", "r_align", "r_div", "r_len", "gate_align", "gate_div", "gate_len"):
        assert f"rewards/{name}/mean" in keys, sorted(keys)
    assert "kl" in keys and "grad_norm" in keys
