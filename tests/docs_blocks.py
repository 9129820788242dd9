"""The Python code blocks of the README and of docs/*.md, collected once for the compile check
(`tests/test_docs_compile.py`) and the real-server run (`tests/integration/test_docs_real.py`).

Every fenced block labelled `python` is collected. A block opts out of the real-server run only with a marker on its
first line, `# not run: <reason>`; it is still compiled, and `MAX_NOT_RUN` keeps such blocks few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOT_RUN = re.compile(r"#\s*not run:\s*(?P<reason>.*\S)")
MAX_NOT_RUN = 2
OPEN = re.compile(r"^```(?P<label>[\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root: README.md, docs/api.md
    line: int  # the line of the opening fence, 1-based
    label: str  # the fence's language label
    source: str

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        first = self.source.lstrip("\n").splitlines()[0] if self.source.strip() else ""
        match = NOT_RUN.fullmatch(first.strip())
        return match["reason"] if match else None


def pages() -> list[Path]:
    """The README and every page of the docs site, in a stable order."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def fenced_blocks(page: Path) -> list[Block]:
    """Every top-level fenced block of a page, whatever its label (the closing fence is a bare ```)."""
    blocks, label, start, body = [], None, 0, []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if label is None:
            match = OPEN.match(line)
            if match:
                label, start, body = match["label"], number, []
        elif line.strip() == "```":
            blocks.append(Block(str(page.relative_to(ROOT)), start, label, "\n".join(body) + "\n"))
            label = None
        else:
            body.append(line)
    assert label is None, f"{page.relative_to(ROOT)}:{start}: a fenced block is never closed"
    return blocks


def python_blocks(page: Path | None = None) -> list[Block]:
    """The `python` blocks of one page, or of the README and every docs page."""
    chosen = [page] if page is not None else pages()
    return [b for p in chosen for b in fenced_blocks(p) if b.label == "python"]
