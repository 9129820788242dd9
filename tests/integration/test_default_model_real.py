"""The default policy model, as a user gets it: prepared from the package index, served, asked for a real user.

Runs before every other integration test (see conftest): it starts and stops its own server, and only
one vLLM engine runs at a time on this machine.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.retrieval.grounding import category_vocabulary
from recgpt.tools.serving.model_prep import DEFAULT_MODEL, MARKER, REGISTRY, model_dir
from recgpt.tools.serving.policy import load_card, policy_folder, shipped_policy
from recgpt.tools.serving.server import is_healthy
from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ENGLISH = re.compile(r"^[ -~]*$")


def _recgpt(*args: str, env: dict[str, str] | None = None, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recgpt.app", *args], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def default_server() -> Iterator[str]:
    """`recgpt model prepare` then `recgpt serve --background` with the default registry model, stopped after."""
    prepared = _recgpt("model", "prepare")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    port = _free_port()
    # prompt embeddings on: the hybrid test below sends them to this same server (one engine at a time here)
    served = _recgpt("serve", "--model", DEFAULT_MODEL, "--port", str(port), "--prompt-embeds", "--background")
    assert served.returncode == 0, served.stderr[-2000:]
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield base_url
    finally:
        stopped = _recgpt("serve", "--stop", "--port", str(port))
        assert stopped.returncode == 0 and not is_healthy(base_url)


def test_the_default_model_is_prepared_from_its_packages_and_verified(default_server: str) -> None:
    folder = model_dir(get_settings().models_dir, DEFAULT_MODEL)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["gguf_sha256"] == REGISTRY[DEFAULT_MODEL].gguf_sha256
    assert marker["sources"] == [part.spec for part in REGISTRY[DEFAULT_MODEL].parts]
    assert not list(folder.parent.glob(".prepare-*"))  # nothing half-written left behind
    again = _recgpt("model", "prepare", timeout=120)  # idempotent: reused, not rebuilt
    assert again.returncode == 0 and (folder / MARKER).read_text() == json.dumps(marker, indent=2)
    listing = _recgpt("model", "list", timeout=120)
    row = next(line for line in listing.stdout.splitlines() if DEFAULT_MODEL in line)
    assert row.split("│")[2].strip() == "yes" and row.split("│")[3].strip() == "yes"  # default, prepared


@needs_shared_data
def test_default_model_recommends_for_a_real_office_user_in_english(default_server: str) -> None:
    env = dict(os.environ, RECGPT_BASE_URL=default_server)
    result = _recgpt("recommend", "--user", "17", "--split", "test", "--tags", "3", "--rationales", "--json", env=env)  # 3 tags; explanations grounded (no call)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    served = json.loads(Path(get_settings().run_dir / f"vllm-{default_server.rsplit(':', 1)[1].split('/')[0]}.json").read_text())
    shipped = shipped_policy(DEFAULT_MODEL, "office")
    expected = (policy_folder(get_settings().models_dir, DEFAULT_MODEL, load_card(shipped)).name if shipped is not None
                else REGISTRY[DEFAULT_MODEL].folder)
    assert Path(served["model"]).name == expected  # the trained policy, merged, when one ships (it does: office-sft)
    if shipped is not None:
        assert json.loads((Path(served["model"]) / MARKER).read_text())["policy"]["adapter_sha256"] == load_card(shipped).adapter_sha256
    assert payload["personas"] and all(ENGLISH.match(p["name"]) for p in payload["personas"])
    assert payload["tags"], payload.get("flags")
    leaves = set(category_vocabulary(default_registry().dataset("office"), "leaf").paths)
    for tag in payload["tags"]:
        assert ">" not in tag["tag"] and ":" not in tag["tag"] and ENGLISH.match(tag["tag"] + tag["rationale"])
        assert tag["category"] in leaves  # grounded (on by default) in a catalogue leaf
    assert payload["recommendations"] and all(rec["items"] for rec in payload["recommendations"])
    assert all(rec["category"] == rec["tag"]["category"] for rec in payload["recommendations"])
    explained = [e for e in payload["explanations"] if e["text"]]
    assert explained, payload.get("flags")
    for explanation in explained:
        assert explanation["mode"] == "grounded" and not explanation["fallback"]  # the default: made by code, no LLM call
        assert ENGLISH.match(explanation["text"]) and explanation["text"].endswith((".", "!", "?", "...")), explanation["text"]


@needs_shared_data
def test_default_model_reads_a_movielens_users_history_as_one_soft_token_per_film(default_server: str, tmp_path: Path) -> None:
    """Issue 35's serving path on the default policy: an adaptor fitted to the served weights (tiny here: the real one
    trains for ~45 min, `scripts/hybrid_measure.sh`), the compact layout it records, prompt embeddings on the server."""
    from recgpt.eval.harness import sample_users
    from recgpt.services.resources import default_registry
    from recgpt.training.adaptor import AdaptorTrainConfig, train_adaptor

    served = Path(json.loads(Path(get_settings().run_dir / f"vllm-{default_server.rsplit(':', 1)[1].split('/')[0]}.json").read_text())["model"])
    folder = train_adaptor(AdaptorTrainConfig(model=str(served), output_dir=tmp_path / "run", dataset="movielens", perception_entities=24,
                                              heldout_entities=8, distill_users=1, distill_max_items=8, epochs=1,
                                              distill_max_new_tokens=16, batch_size=16, category_text=False))
    user = sample_users(default_registry().dataset("movielens"), "test", 1, 0)[0]
    env = dict(os.environ, RECGPT_BASE_URL=default_server)
    common = ("recommend", "--dataset", "movielens", "--user", user, "--split", "test", "--personas", "1", "--tags-per-expert", "3",
              "--tags", "3", "--explanations", "off", "--json")
    hybrid = _recgpt(*common, "--compression", "hybrid", "--adaptor", str(folder), env=env)
    assert hybrid.returncode == 0, hybrid.stderr[-2000:]
    state = json.loads(hybrid.stdout[hybrid.stdout.index("{"):])
    stats = state["context_stats"]
    assert stats["compression"] == "hybrid" and stats["n_entities"] >= 10  # MovieLens: long histories, one position per film
    ok = [c for c in state["calls"] if c["ok"]]
    assert ok and all(c["prompt_tokens"] >= stats["prefix_tokens"] for c in ok)  # the server read the soft-token prefix
    assert not any("endpoint_unavailable" in f or "rejected" in f for f in state["flags"]), state["flags"]
    text = _recgpt(*common, env=env)
    assert text.returncode == 0, text.stderr[-2000:]
    text_stats = json.loads(text.stdout[text.stdout.index("{"):])["context_stats"]
    assert text_stats["n_listed_items"] == stats["n_listed_items"]
    # the same films in far fewer positions: the compact layout drops each title's tokens and its genre path
    assert stats["prefix_tokens"] < 0.6 * text_stats["prefix_tokens"], (stats, text_stats)
