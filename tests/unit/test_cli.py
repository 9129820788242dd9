"""Command-line failures: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA


def recgpt(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recgpt.app", *args], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120)


def test_every_command_has_help() -> None:
    for args in ([], ["serve"], ["recommend"], ["demo"], ["eval"], ["eval-retrieval"], ["model"], ["model", "prepare"], ["stats", "context"]):
        result = recgpt(*args, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, (args, result.stderr)


def test_unreachable_endpoint_is_one_clear_line() -> None:
    result = recgpt("recommend", "--user", "1", RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9/v1" in lines[0] and "recgpt serve" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data folder absent")
def test_unknown_user_and_bad_dataset(tmp_path: Path) -> None:
    # a live endpoint is needed to get past the endpoint check: fake one with a tiny HTTP server
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"data": [{"id": "m"}]}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        result = recgpt("recommend", "--user", "no-such-user", RECGPT_BASE_URL=url)
        assert result.returncode == 1 and "user 'no-such-user' is not in dataset 'office'" in result.stderr
        result = recgpt("recommend", "--user", "1", "--dataset", str(tmp_path), RECGPT_BASE_URL=url)
        assert result.returncode == 1 and "items.jsonl: file not found" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        server.shutdown()


def test_usage_errors_exit_non_zero() -> None:
    result = recgpt("recommend")
    assert result.returncode == 2 and "Missing option '--user'" in result.stderr
    result = recgpt("recommend", "--user", "1", "--split", "sideways", RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1 and "--split must be one of" in result.stderr


def test_default_model_dir_is_a_path_for_serve_and_demo(isolated_home) -> None:
    """Regression: a second `_default_model_dir` returning str once shadowed this one, and `recgpt serve`
    / `recgpt demo` crashed joining paths."""
    from recgpt.cli.common import default_model_folder
    from recgpt.tools.model_prep import default_model_dir

    path = default_model_folder(prepare=False)
    assert isinstance(path, Path) and path == default_model_dir(isolated_home / "models")
    assert isinstance(path / "config.json", Path)


def test_a_bad_plugin_is_one_clear_line_before_any_llm_call() -> None:
    result = recgpt("recommend", "--user", "1", "--plugin", "no_such_module_xyz:plugins",
                    RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_module_xyz:plugins" in lines[0] and "cannot import" in lines[0]


def test_an_unknown_policy_is_one_clear_line(isolated_home) -> None:
    result = recgpt("serve", "--policy", "best", "--port", "8931")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("--policy must be one of trained, expert, base (got 'best')")
