"""Append-only JSONL files that survive a kill: the resume stores of eval and training build on this."""

from __future__ import annotations

from pathlib import Path


def append_line(path: Path, line: str) -> None:
    """Append one line. A previous line cut short by a kill has no newline: start on a fresh line, or this line
    would be glued to the broken one and lost with it when the file is read back."""
    with path.open("a+b") as handle:
        handle.seek(0, 2)
        cut = False
        if handle.tell() > 0:
            handle.seek(-1, 2)
            cut = handle.read(1) != b"\n"
        handle.write((b"\n" if cut else b"") + line.encode("utf-8") + b"\n")
        handle.flush()
