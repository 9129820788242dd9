"""Datasets: records, adapters (Office, MovieLens, JSONL) and the leave-last-out split."""

from __future__ import annotations

from pathlib import Path

from recgpt.data.dataset import Dataset, Split, SplitExample
from recgpt.data.jsonl import load_jsonl
from recgpt.data.movielens import FILES as MOVIELENS_FILES
from recgpt.data.movielens import fetch_from_recbole_wheel, load_movielens
from recgpt.data.office import load_office
from recgpt.data.records import Interaction, Item, UserHistory, UserProfile
from recgpt.errors import DataError
from recgpt.settings import get_settings

BUILTIN = ("office", "movielens")

__all__ = [
    "Dataset", "Split", "SplitExample", "Interaction", "Item", "UserHistory", "UserProfile",
    "load_dataset", "BUILTIN",
]


def _movielens_folder(data_dir: Path, home: Path) -> Path:
    shared = data_dir / "movielens_100k"
    if all((shared / f).is_file() for f in MOVIELENS_FILES):
        return shared
    cached = home / "data" / "movielens_100k"
    if not all((cached / f).is_file() for f in MOVIELENS_FILES):
        fetch_from_recbole_wheel(cached)
    return cached


def load_dataset(name: str, data_dir: Path | str | None = None) -> Dataset:
    """Load `office`, `movielens`, or a folder path holding `items.jsonl` + `histories.jsonl`, from disk, every time.

    Not cached: a `Registry` (`recgpt.services.resources`) keeps the datasets a process resolved, keyed by name and
    data folder, so a changed data folder is a different dataset."""
    settings = get_settings()
    root = Path(data_dir) if data_dir else settings.data_dir
    if name == "office":
        return load_office(root / "amazon2014_office")
    if name == "movielens":
        return load_movielens(_movielens_folder(root, settings.home))
    path = Path(name)
    if path.is_dir():
        return load_jsonl(path)
    raise DataError(f"unknown dataset {name!r}: use one of {', '.join(BUILTIN)} or a folder with items.jsonl and histories.jsonl")
