"""The documentation's code runs: every python snippet of docs/api.md, in order, against the real vLLM server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data folder absent")]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def snippets(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_api_page_snippets_run_against_the_real_server(vllm_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = snippets(DOCS / "api.md")
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out
    assert len(namespace["state"]["tags"]) >= 1 and namespace["graph"] is not None
    assert re.search(r"^planner \[.*'personas'", printed, flags=re.M)  # the stream snippet showed the planner
    assert "gift ideas in the pool" in printed and printed.rstrip().endswith("True")  # the thread kept the run
    assert any(c.agent == "gift_expert" for c in namespace["state"]["calls"])  # the plug-in expert really ran

