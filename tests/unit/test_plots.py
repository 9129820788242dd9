"""`recgpt.plots.figure`: the shared setup of the report figures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from recgpt import plots


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


def test_figure_saves_a_tight_png_at_its_size_and_dpi(tmp_path: Path) -> None:
    assert plots.available()
    with plots.figure(tmp_path / "one.png", size=(4, 2), dpi=50) as (fig, ax):
        ax.plot([0, 1], [1, 0])
    assert _png_size(tmp_path / "one.png") == (200, 100)
    with plots.figure(tmp_path / "grid.png", 2, 3, size=(6, 4), sharey=True) as (fig, axes):
        assert axes.shape == (2, 3) and fig.get_size_inches().tolist() == [6, 4]
    assert _png_size(tmp_path / "grid.png") == (6 * plots.DPI, 4 * plots.DPI)


def test_a_failed_drawing_writes_no_file(tmp_path: Path) -> None:
    with pytest.raises(KeyError), plots.figure(tmp_path / "x.png", size=(2, 2)) as (_, ax):
        ax.plot({}["missing"])
    assert not (tmp_path / "x.png").exists()
