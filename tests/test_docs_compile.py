"""The documentation fails fast: every Python block of the README and docs/*.md compiles, none hides under another
fence label, few opt out of the real-server run, every docs page is in the site's nav, and the README stays short.

The blocks themselves run against a real vLLM server in `tests/integration/test_docs_real.py`.
"""

from __future__ import annotations

import re

import pytest

from tests.docs_blocks import DOCS, MAX_NOT_RUN, ROOT, Block, fenced_blocks, pages, python_blocks

BLOCKS = python_blocks()


def test_the_docs_have_python_blocks() -> None:
    assert len(BLOCKS) >= 8, [b.name for b in BLOCKS]
    assert {"README.md", "docs/api.md"} <= {b.page for b in BLOCKS}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_every_python_block_compiles(block: Block) -> None:
    compile(block.source, block.name, "exec")


def test_no_python_block_hides_under_another_label() -> None:
    # `py`, `python3`, `pycon`, `ipython` would escape both the compile check and the real-server run
    hidden = [b.name for p in pages() for b in fenced_blocks(p) if b.label != "python" and re.fullmatch(r"py\w*|ipython\w*", b.label)]
    assert not hidden, f"label these blocks `python`: {hidden}"


def test_few_blocks_opt_out_of_the_real_server_run() -> None:
    opted_out = [b for b in BLOCKS if b.not_run_reason is not None]
    assert len(opted_out) <= MAX_NOT_RUN, [f"{b.name}: {b.not_run_reason}" for b in opted_out]
    marked = [b.name for b in BLOCKS if "not run" in b.source.lstrip().splitlines()[0] and b.not_run_reason is None]
    assert not marked, f"an opt-out needs `# not run: <reason>` on the block's first line: {marked}"


def test_every_docs_page_is_in_the_site_nav() -> None:
    # mkdocs build --strict (make test) fails on this too; here it fails in the unit tests' first seconds
    nav = set(re.findall(r":\s*([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), flags=re.M))
    on_disk = {p.name for p in DOCS.glob("*.md")}
    assert on_disk == nav, {"missing from nav": sorted(on_disk - nav), "in nav, not on disk": sorted(nav - on_disk)}


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    assert lines[0] == "```bash" and lines[1].startswith("make demo") and lines[2].startswith("make test") and lines[3] == "```"


def test_the_docs_name_the_files_the_jsonl_loader_reads() -> None:
    from recgpt.data.jsonl import HISTORIES_FILE, ITEMS_FILE

    data_page = (DOCS / "data.md").read_text(encoding="utf-8")
    assert f"`{ITEMS_FILE}`" in data_page and f"`{HISTORIES_FILE}`" in data_page
    for page in pages():
        text = page.read_text(encoding="utf-8")
        assert "users.jsonl" not in text and "interactions.jsonl" not in text, f"{page.name} names files the loader does not read"
