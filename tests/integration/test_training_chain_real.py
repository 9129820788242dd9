"""The training package against real parts: judge-graded reward data from the real server, and a policy
trained on the real default model, exported, served by a second vLLM server and evaluated."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from recgpt.data.dataset import Split
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.training.reward_data import RewardDataConfig, build_reward_data
from recgpt.training.reward_model import RewardGroup

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_reward_data_grades_real_policy_samples_without_held_out_targets(vllm_server: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "groups.jsonl"
    summary = build_reward_data(RewardDataConfig(output=out, max_users=2, samples=2, judge_mode="single", concurrency=4),
                                show_progress=False)
    graded = sum(summary["grades"].values())
    assert graded + summary["failed_samples"] + summary["judge_abstained"] == 4  # every sample accounted for
    groups = [RewardGroup.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(groups) == summary["groups"] >= 1 and sum(len(g.samples) for g in groups) == graded
    for group in groups:
        for sample in group.samples:
            assert len(json.loads(sample.text)["tags"]) == 5
    data = default_registry().dataset("office")
    for group in groups:  # the prompt is a training-prefix cut: the user's held-out targets never appear
        assert group.user_id is not None
        seen = {data.items[e.item_id].title for e in data.training_prefix(group.user_id)}
        for split in (Split.validation, Split.test):
            title = data.items[data.example(group.user_id, split).target.item_id].title
            assert title in seen or title not in group.prompt
    # resumable: a second run reuses every stored sample and verdict (no server call would change the result)
    again = build_reward_data(RewardDataConfig(output=out, max_users=2, samples=2, judge_mode="single", concurrency=4),
                              show_progress=False)
    assert again["grades"] == summary["grades"]
    agreement = summary["rule_agreement"]  # the LLM judge is checked against the rule on every graded sample
    assert agreement["samples"] == graded and sum(agreement["rule_grades"].values()) == graded
    # the rule judge grades the same stored samples (same --out: they do not depend on the judge) without a server call
    monkeypatch.setenv("RECGPT_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    get_settings.cache_clear()
    try:
        ruled = build_reward_data(RewardDataConfig(output=out, max_users=2, samples=2, judge_mode="rules", concurrency=4),
                                  show_progress=False)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert sum(ruled["grades"].values()) == graded and ruled["grades"] == agreement["rule_grades"]
    assert ruled["rule_agreement"]["exact"] == 1.0


def test_an_offline_round_samples_under_the_grammar_scores_and_resumes(vllm_server: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`recgpt train sample-round` on the real server: every answer kept and scored, the prompts carry the evidence
    block and never a test target, and a rerun reads the kept samples without the server."""
    from recgpt.prompts.shared import EVIDENCE_HEADER
    from recgpt.training.configs import SampleRoundConfig
    from recgpt.training.sample_round import MODEL_KEY, build_sample_round

    config = SampleRoundConfig(output=tmp_path / "round-1", max_users=2, samples=2, concurrency=4)
    summary = build_sample_round(config, show_progress=False)
    store = [json.loads(line) for line in (config.output / "samples.jsonl").read_text().splitlines()]
    keys = {row["key"] for row in store}
    assert MODEL_KEY in keys and len(keys) == 1 + 2 * (1 + 2)  # the served weights, then greedy + G per prompt
    assert summary["prompts"] == 2 and summary["answers"] + summary["failed_answers"] >= 4
    assert set(summary["zero_std_share"]) == {"crs-sparse", "crs-dense", "sum-sparse", "sum-dense"}
    for name in ("rft", "dpo-crs", "dpo-sum", "scores", "prompts"):
        assert (config.output / f"{name}.jsonl").is_file()
    for line in (config.output / "scores.jsonl").read_text().splitlines():
        for parts in json.loads(line)["samples"]:
            assert 0.0 <= parts["rank"] <= 1.0 and 0.0 <= parts["acc"] <= 1.0
    data = default_registry().dataset("office")
    prompts = [json.loads(line) for line in (config.output / "prompts.jsonl").read_text().splitlines()]
    assert len(prompts) == 2
    for row in prompts:  # the evidence as served; the test target never (unless the history already shows its title)
        text = row["prompt"][0]["content"]
        test_target = data.items[data.example(row["user_id"], Split.test).target.item_id].title
        seen = {data.items[e.item_id].title for e in data.example(row["user_id"], Split.validation).history}
        assert EVIDENCE_HEADER.strip() in text and (test_target in seen or test_target not in text)
    before = (config.output / "samples.jsonl").read_text()
    monkeypatch.setenv("RECGPT_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there: the kept samples suffice
    get_settings.cache_clear()
    try:
        again = build_sample_round(config, show_progress=False)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert (config.output / "samples.jsonl").read_text() == before and again["rows"] == summary["rows"]

    # the GPU's reward table for the same prompts, from the real Chroma index and SASRec: the same served prompts,
    # and its reward measured against the round's exact scores
    from recgpt.training.reward_table import agreement, build_reward_table
    from recgpt.training.sample_round import ROUND_GATES

    table = build_reward_table("office", config.max_users, config.seed, config.tags_per_expert, show_progress=False)
    assert [p.prompt for p in table.prompts] == [row["prompt"] for row in prompts]
    assert table.schema["properties"]["tags"]["maxItems"] == config.tags_per_expert and table.sizes
    for prompt in table.prompts:
        assert set(prompt.ranks) <= set(table.labels) and all(1 <= r <= table.per_tag for r in prompt.ranks.values())
    measured = agreement(table, config.output, ROUND_GATES)
    scored = sum(len(json.loads(line)["samples"]) for line in (config.output / "scores.jsonl").read_text().splitlines())
    assert measured["answers"] == scored and set(measured["same_best_answer"]) == {"crs", "sum"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sft_policy_is_exported_served_and_evaluated(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.eval.harness import EvalConfig, run_eval
    from recgpt.services.endpoints import served_model_identity
    from recgpt.tools.serving.server import ServerConfig, start_server
    from recgpt.training.export import export_model
    from recgpt.training.sft import SFTRunConfig, run_sft

    final = run_sft(SFTRunConfig(model=str(model_dir), output_dir=tmp_path / "sft", max_users=2, max_steps=1,
                                 per_device_train_batch_size=2, gradient_accumulation_steps=1, lora_r=8, lora_alpha=16, save_steps=1000))
    exported = export_model(final, tmp_path / "sft-model")
    assert (exported / "recgpt_export.json").is_file()
    config = ServerConfig(model_dir=exported, port=_free_port(), eager=True, served_name="recgpt-test-sft")
    handle = start_server(config, tmp_path / "run", timeout=600)
    try:
        monkeypatch.setenv("RECGPT_BASE_URL", config.base_url)
        get_settings.cache_clear()
        _, results, store = run_eval(EvalConfig(method="expert", users=2, k_tags=3, k_items=[10]), tmp_path / "home",
                                     show_progress=False)
        assert len(results) == 2 and all(r.error is None and r.llm_calls == 1 for r in results)
        assert all(len(r.tags) == 3 or any(f.startswith("expert_failed") for f in r.flags) for r in results)
        # results are keyed by the served weights: the SFT policy cannot reuse the base model's results
        assert str(exported) in served_model_identity(config.base_url, "recgpt-test-sft")
    finally:
        handle.stop()
        get_settings.cache_clear()


def test_an_sft_adapter_serves_the_experts_as_a_lora_module(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`recgpt serve --policy expert`: the base answers every agent, the adapter (a vLLM LoRA module) the experts."""
    import asyncio

    from recgpt.graph import Context, build_graph
    from recgpt.services import endpoints
    from recgpt.services.resources import Registry, resolve
    from recgpt.tools.serving.server import ServerConfig, served_models, start_server
    from recgpt.training.sft import SFTRunConfig, run_sft

    final = run_sft(SFTRunConfig(model=str(model_dir), output_dir=tmp_path / "sft", max_users=2, max_steps=1,
                                 per_device_train_batch_size=2, gradient_accumulation_steps=1, lora_r=8, lora_alpha=16, save_steps=1000))
    config = ServerConfig(model_dir=model_dir, port=_free_port(), eager=True, served_name="recgpt-test-base",
                          lora_modules={endpoints.EXPERT_ADAPTER: str(final)}, max_lora_rank=8)
    handle = start_server(config, tmp_path / "run", timeout=600)
    try:
        assert set(served_models(config.base_url)) == {"recgpt-test-base", endpoints.EXPERT_ADAPTER}
        monkeypatch.setenv("RECGPT_BASE_URL", config.base_url)
        monkeypatch.setenv("RECGPT_MODEL", "recgpt-test-base")
        get_settings.cache_clear()
        ctx = Context(num_personas=2, tags_per_expert=2, num_tags=2, explanation_mode="off")
        registry = Registry()  # a fresh one: what this new server serves is asked anew
        assert registry.endpoints(ctx).expert.model == endpoints.EXPERT_ADAPTER
        assert registry.endpoints(ctx).policy.model == "recgpt-test-base"
        resources = resolve("office", registry=registry)
        state = asyncio.run(build_graph(resources).ainvoke({"user_id": "5", "dataset": "office", "split": "test"}, context=ctx))
        experts = [c for c in state["calls"] if c.agent.startswith("expert[")]
        assert len(experts) == 2 and all(c.ok for c in experts), experts  # the LoRA module answers under the schema
        assert state["tags"], state.get("flags")
        identity = endpoints.served_model_identity(config.base_url, "recgpt-test-base")
        assert f"+{endpoints.EXPERT_ADAPTER}@{final}" in identity  # results are keyed by the adapter too
    finally:
        handle.stop()
        get_settings.cache_clear()
