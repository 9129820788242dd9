"""A real vLLM server with the default model, started once per test session and stopped after."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from recgpt.settings import get_settings
from recgpt.tools.model_prep import prepare_default_model
from recgpt.tools.server import ServerConfig, is_healthy, start_server, stop_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return prepare_default_model(get_settings().models_dir)


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
