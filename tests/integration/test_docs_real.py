"""The documentation's code runs: every python block of README.md and docs/*.md, page by page, in order, in one
namespace per page, against the real vLLM server. A block leaves this run only with `# not run: <reason>` on its
first line (`tests/docs_blocks.py`; `tests/test_docs_compile.py` keeps such blocks few and compiles every block)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.conftest import needs_shared_data
from tests.docs_blocks import ROOT, python_blocks

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              needs_shared_data]

PAGES = sorted({b.page for b in python_blocks()})


def _readme(namespace: dict, printed: str) -> None:
    assert len(namespace["state"]["tags"]) >= 1 and namespace["resources"].dataset.name == "movielens"
    assert re.search(r"^\[.+\]$", printed, flags=re.M)  # a printed list of tags


def _api(namespace: dict, printed: str) -> None:
    assert len(namespace["state"]["tags"]) >= 1 and namespace["graph"] is not None
    assert re.search(r"^planner \[.*'personas'", printed, flags=re.M)  # the stream snippet showed the planner
    assert "gift ideas in the pool" in printed and printed.rstrip().endswith("True")  # the thread kept the run
    assert any(c.agent == "gift_expert" for c in namespace["state"]["calls"])  # the plug-in expert really ran


def _writing_an_agent(namespace: dict, printed: str) -> None:
    assert namespace["GIFT_EXPERT"].name == "gift_expert" and namespace["BRAND_SAFETY"].name == "brand_safety"


def _data(namespace: dict, printed: str) -> None:
    assert "3 ['sku-1', 'sku-2'] -> sku-3" in printed


# What each page's blocks must have done beyond not raising; a page without an entry is checked for that alone.
CHECKS: dict[str, Callable[[dict, str], None]] = {
    "README.md": _readme,
    "docs/api.md": _api,
    "docs/writing-an-agent.md": _writing_an_agent,
    "docs/data.md": _data,
}


def test_the_checked_pages_still_have_python_blocks() -> None:
    assert set(CHECKS) <= set(PAGES), set(CHECKS) - set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_page_blocks_run_against_the_real_server(page: str, vllm_server: str, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # `from examples.shop_plugins import ...` as a reader at the checkout's root would
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {"__name__": "docs_" + re.sub(r"\W", "_", page)}
    ran = 0
    for block in python_blocks(ROOT / page):
        if block.not_run_reason is not None:
            continue
        exec(compile(block.source, block.name, "exec"), namespace)  # noqa: S102 - our own documentation
        ran += 1
    assert ran >= 1, f"{page}: every block opted out"
    CHECKS.get(page, lambda namespace, printed: None)(namespace, capsys.readouterr().out)
