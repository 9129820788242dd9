"""A real vLLM server, started once per test session and stopped after.

The session's shared server runs the smallest registry model (`RECGPT_TEST_MODEL`, default
smollm2-135m): these tests check the machinery (graph, faults, durability, training chain) against
a real server, and the small model keeps the suite within CI's time on 2 cores. The default policy
model gets its own test, `test_default_model_real.py`, which prepares it from the package index and
serves it. That module runs first: one vLLM engine at a time on this machine, so its server is
stopped before the session's starts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from recgpt.settings import get_settings
from recgpt.tools.serving.model_prep import prepare_model
from recgpt.tools.serving.server import ServerConfig, is_healthy, start_server, stop_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FIRST_MODULES = ("test_default_model_real.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the default-model module before anything can start the session's server."""
    items.sort(key=lambda item: item.path.name not in FIRST_MODULES)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return prepare_model(get_settings().models_dir, os.environ.get("RECGPT_TEST_MODEL", "smollm2-135m"))


@pytest.fixture(scope="session")
def vllm_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a freshly started server; RECGPT_BASE_URL points at it for the session."""
    run_dir = tmp_path_factory.mktemp("vllm-run")
    # Prompt embeddings on: the hybrid-compression tests use this same server (one vLLM per session; a second
    # engine started beside a busy one on 2 cores was seen to stall in start-up).
    config = ServerConfig(model_dir=model_dir, port=_free_port(), eager=True, served_name="recgpt-test",
                          enable_prompt_embeds=True)
    handle = start_server(config, run_dir, timeout=600)
    previous = os.environ.get("RECGPT_BASE_URL")
    os.environ["RECGPT_BASE_URL"] = config.base_url
    get_settings.cache_clear()
    try:
        yield config.base_url
    finally:
        if previous is None:
            os.environ.pop("RECGPT_BASE_URL", None)
        else:
            os.environ["RECGPT_BASE_URL"] = previous
        get_settings.cache_clear()
        assert stop_server(run_dir, config.port), "the server's pid file was missing"
        handle.process.wait(timeout=30)
        assert not is_healthy(config.base_url)
