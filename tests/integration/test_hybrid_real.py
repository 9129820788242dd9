"""Hybrid context compression against the real vLLM server (started with --enable-prompt-embeds) and real Office data."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from recgpt.schema.context import Context
from recgpt.tools.context.adaptor import AdaptorConfig, EntityAdaptor, ModelIdentity
from recgpt.tools.context.entities import entity
from recgpt.tools.context.hybrid import HybridAssembler, encode_tensor
from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1200),
              needs_shared_data]

MESSAGES = [{"role": "system", "content": "You recommend office products. Answer with JSON."},
            {"role": "user", "content": "Name two products a student needs for the new term."}]


@pytest.fixture(scope="module")
def assembler(model_dir: Path) -> HybridAssembler:
    adaptor = EntityAdaptor(AdaptorConfig(hidden_dim=64, model=ModelIdentity.of(model_dir), model_dir=str(model_dir)))
    return HybridAssembler(model_dir, adaptor)


def _complete(base_url: str, body: dict) -> dict:
    response = httpx.post(base_url + "/completions", json={"model": "recgpt-test", "temperature": 0, **body}, timeout=300)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def test_assembled_embeddings_are_exactly_what_the_server_reads_from_text(vllm_server: str, assembler: HybridAssembler) -> None:
    """Text-only messages assembled on our side and sent as prompt embeddings decode exactly like the server's own
    chat-template + tokenizer path: training-time and serving-time prompts are the same tensor."""
    as_embeds = _complete(vllm_server, {"prompt_embeds": encode_tensor(assembler.embeds(MESSAGES).bfloat16()), "max_tokens": 24})
    chat = httpx.post(vllm_server + "/chat/completions", timeout=300, json={
        "model": "recgpt-test", "temperature": 0, "max_tokens": 24, "messages": MESSAGES}).json()
    assert as_embeds["usage"]["prompt_tokens"] == chat["usage"]["prompt_tokens"]
    assert as_embeds["choices"][0]["text"] == chat["choices"][0]["message"]["content"]


def test_each_entity_is_one_prompt_position_on_the_server(vllm_server: str, assembler: HybridAssembler) -> None:
    title = "Pilot G2 Retractable Premium Gel Ink Roller Ball Pens, Fine Point, Black Ink, 12-Pack"
    hybrid = [MESSAGES[0], {"role": "user", "content": f"The user bought {entity(title)}. Name one more product."}]
    text = [MESSAGES[0], {"role": "user", "content": f'The user bought "{title}". Name one more product.'}]
    answer = _complete(vllm_server, {"prompt_embeds": encode_tensor(assembler.embeds(hybrid)), "max_tokens": 8})
    assert answer["usage"]["prompt_tokens"] == assembler.render(hybrid).n_tokens
    assert assembler.render(text).n_tokens - answer["usage"]["prompt_tokens"] >= 15  # a 20+-token title became 1 position


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recgpt.app", *args]


def test_recommend_with_hybrid_compression_end_to_end(vllm_server: str, model_dir: Path, tmp_path: Path) -> None:
    from recgpt.training.adaptor import AdaptorTrainConfig, train_adaptor

    folder = train_adaptor(AdaptorTrainConfig(model=str(model_dir), output_dir=tmp_path / "run", perception_entities=40,
                                              heldout_entities=12, distill_users=2, distill_max_items=8, epochs=1,
                                              distill_max_new_tokens=24, batch_size=16))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["examples"]["distill"] == 2 and metrics["self_perception_heldout"]["trained_adaptor"]["n"] == 12
    env = dict(os.environ, RECGPT_BASE_URL=vllm_server)
    done = subprocess.run(cli("recommend", "--user", "3", "--split", "test", "--compression", "hybrid", "--adaptor", str(folder),
                              "--personas", "1", "--tags-per-expert", "2", "--tags", "2", "--explanations", "off", "--json"),
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout[done.stdout.index("{"):])
    stats = state["context_stats"]
    assert stats["compression"] == "hybrid" and stats["n_entities"] > 0
    ok = [c for c in state["calls"] if c["ok"]]
    assert {c["agent"] for c in state["calls"]} >= {"planner", "expert[0]"}
    assert ok and all(c["prompt_tokens"] >= stats["prefix_tokens"] for c in ok)  # the server read the hybrid prefix
    assert not any("endpoint_unavailable" in f or "rejected" in f for f in state["flags"]), state["flags"]

    from recgpt.services.prefix import build_shared_prefix
    from recgpt.services.resources import resolve

    text = asyncio.run(build_shared_prefix(Context(base_url=vllm_server), resolve("office"), "3", "test"))
    assert text["context_stats"].n_listed_items == stats["n_listed_items"]
    assert stats["prefix_tokens"] < text["context_stats"].prefix_tokens  # same items, fewer positions


def test_an_adaptor_for_another_model_is_refused_in_one_line(vllm_server: str, tmp_path: Path) -> None:
    from tests.unit.test_sft import tiny_model_dir

    tiny = tiny_model_dir(tmp_path / "tiny")
    folder = EntityAdaptor(AdaptorConfig(hidden_dim=8, model=ModelIdentity.of(tiny), model_dir=str(tiny))).save(tmp_path / "a")
    env = dict(os.environ, RECGPT_BASE_URL=vllm_server)
    done = subprocess.run(cli("recommend", "--user", "3", "--compression", "hybrid", "--adaptor", str(folder), "--explanations", "off"),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and "trained for another model" in " ".join(lines), done.stderr[-1500:]
