"""Adapter for MovieLens 100K in RecBole atomic files (`ml-100k.inter|item|user`).

Interactions are ratings with unix timestamps, sorted oldest first per user (ties keep file
order). Action is "rated" and the rating is kept. Genres become `genres` and the first genre
the one-level `category_path` ("Movies", genre) so that hierarchical and flat catalogues share
one shape. When the shared data folder lacks these files, `fetch_from_recbole_wheel` extracts
the same files from the PyPI wheel `recbole==1.2.1` (it ships them).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from recgpt.data.dataset import Dataset
from recgpt.data.records import Item, UserHistory
from recgpt.data.validation import build
from recgpt.errors import DataError

FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
RECBOLE_WHEEL = "recbole==1.2.1"


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (set RECGPT_DATA_DIR, or let recgpt fetch ML-100K from {RECBOLE_WHEEL})")
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = [h.split(":")[0] for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: record line {line_no} field '<record>': expected {len(header)} tab-separated fields, got {len(row)}")
            rows.append(dict(zip(header, row)))
        return rows


def load_movielens(folder: Path) -> Dataset:
    inter_path, item_path, user_path = (folder / name for name in FILES)
    items: dict[str, Item] = {}
    for line_no, row in enumerate(_rows(item_path), start=2):
        genres = tuple(g for g in row.get("class", "").split() if g)
        year = row.get("release_year", "").strip()
        title = row.get("movie_title", "").strip()
        record = {
            "item_id": row.get("item_id", ""),
            "title": f"{title} ({year})" if year else title,
            "genres": genres,
            "category_path": ("Movies", genres[0]) if genres else ("Movies",),
        }
        item = build(Item, item_path, f"line {line_no}", record)
        items[item.item_id] = item

    profiles: dict[str, dict[str, object]] = {}
    for line_no, row in enumerate(_rows(user_path), start=2):
        try:
            age = int(row["age"])
        except (KeyError, ValueError):
            raise DataError(f"{user_path}: record line {line_no} field 'age': not an integer: {row.get('age')!r}") from None
        profiles[row["user_id"]] = {
            "age": age,
            "gender": row.get("gender") or None,
            "occupation": row.get("occupation") or None,
            "extra": {"zip": row["zip_code"]} if row.get("zip_code") else {},
        }

    events: dict[str, list[tuple[float, int, dict[str, object]]]] = {}
    for line_no, row in enumerate(_rows(inter_path), start=2):
        try:
            ts = float(row["timestamp"])
            rating = float(row["rating"])
        except (KeyError, ValueError):
            raise DataError(f"{inter_path}: record line {line_no} field 'timestamp/rating': not a number") from None
        events.setdefault(row["user_id"], []).append(
            (ts, line_no, {"item_id": row["item_id"], "timestamp": int(ts), "rating": rating, "action": "rated"})
        )

    users: dict[str, UserHistory] = {}
    for user_id in sorted(events, key=lambda u: (len(u), u)):
        ordered = [e for _, _, e in sorted(events[user_id], key=lambda t: (t[0], t[1]))]
        record = {"user_id": user_id, "interactions": ordered, "profile": profiles.get(user_id, {})}
        users[user_id] = build(UserHistory, inter_path, f"user {user_id!r}", record)
    return Dataset(
        name="movielens", items=items, users=users, source_files=tuple(str(folder / n) for n in FILES)
    )


def fetch_from_recbole_wheel(target: Path) -> Path:
    """Download the recbole wheel (no dependencies) and extract the three ML-100K files."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, RECBOLE_WHEEL]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(f"could not download {RECBOLE_WHEEL} for MovieLens 100K: {result.stderr.strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as archive:
            for name in FILES:
                member = f"recbole/dataset_example/ml-100k/{name}"
                (target / name).write_bytes(archive.read(member))
    return target
