"""Report figures: the matplotlib setup every report writer (eval and training) shares.

Imports only matplotlib (lazily) and the standard library, so it sits at the bottom layer. A writer draws
inside `figure(...)`; the figure is laid out tightly and saved when the block ends:

    if not plots.available():
        return None
    with plots.figure(path, 1, 2, size=(11, 4)) as (fig, (left, right)):
        left.bar(...)
    return path
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

DPI = 110


def available() -> bool:
    """Whether matplotlib is installed; a report writer skips its figure (returns None) where it is not."""
    return importlib.util.find_spec("matplotlib") is not None


@contextmanager
def figure(path: Path, nrows: int = 1, ncols: int = 1, *, size: tuple[float, float], dpi: int = DPI,
           style: str = "default", **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """Yield `(fig, axes)`: `nrows` x `ncols` axes as `Figure.subplots` returns them (one Axes for 1 x 1; extra
    keywords such as `sharey=True` are passed on), drawn in matplotlib style `style` ("default": the
    library's defaults, whatever a user's matplotlibrc says). When the block ends without an error the figure
    gets a tight layout and is saved to `path` at `dpi`.

    The figure has its own Agg canvas rather than coming from pyplot: the process's backend is left alone
    (no `matplotlib.use("Agg")` switching a notebook's backend) and there is no pyplot figure to close."""
    # deferred: matplotlib (~0.5 s to import) is needed only when a report draws its figure
    from matplotlib import style as mpl_style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with mpl_style.context(style):
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
        yield fig, fig.subplots(nrows, ncols, **subplots)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
