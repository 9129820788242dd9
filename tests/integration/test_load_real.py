"""`recgpt load`, short form, against the real vLLM server: 64 concurrent user graphs, nothing lost or unhandled.
(The full run is the command itself; its report is committed under reports/load-office.*.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              needs_shared_data]


def test_64_concurrent_users_lose_nothing(vllm_server: str, tmp_path: Path) -> None:
    # duration 5 s: every worker starts one user at once, then the 64 runs drain
    args = ["load", "--concurrency", "64", "--duration", "5", "--personas", "1", "--tags-per-expert", "2", "--tags", "2", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "recgpt.app", *args], env=dict(os.environ, RECGPT_BASE_URL=vllm_server),
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "load-office.json").read_text())
    assert report["started"] == report["finished"] >= 64 and report["lost"] == 0
    assert report["outcomes"]["unhandled"] == 0, report["errors"]
    assert report["outcomes"]["ok"] + report["outcomes"]["flagged"] >= 60, report["errors"]  # errors must be rare and clear
    assert report["latency_s"]["p95"] >= report["latency_s"]["p50"] > 0
    assert (tmp_path / "load-office.md").read_text().count("| **0** |") >= 1
