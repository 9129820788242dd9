"""Bring-your-own data: a folder with `items.jsonl` and `histories.jsonl`.

`items.jsonl`, one item per line::

    {"item_id": "sku-1", "title": "Gel pens, 12 colours", "category_path": ["Office", "Pens"],
     "brand": "Acme", "description": "optional", "genres": []}

`histories.jsonl`, one user per line, interactions oldest first::

    {"user_id": "u1", "interactions": [{"item_id": "sku-1", "timestamp": 1700000000,
     "action": "purchase"}], "profile": {"age": 31, "gender": "F", "occupation": "teacher",
     "location": "Hangzhou", "extra": {"tier": "gold"}}}

Only `item_id` and `title` (items) and `user_id` (histories) are required. Blank lines are
skipped; any invalid line raises a `DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from recgpt.data.dataset import Dataset
from recgpt.data.records import Item, UserHistory
from recgpt.data.validation import build
from recgpt.errors import DataError

ITEMS_FILE = "items.jsonl"
HISTORIES_FILE = "histories.jsonl"


def _lines(path: Path) -> list[tuple[int, object]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (a JSONL dataset folder needs {ITEMS_FILE} and {HISTORIES_FILE})")
    out = []
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    out.append((line_no, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: record line {line_no} field '<record>': not valid JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return out


def load_jsonl(folder: Path) -> Dataset:
    items_path, histories_path = folder / ITEMS_FILE, folder / HISTORIES_FILE
    items: dict[str, Item] = {}
    for line_no, raw in _lines(items_path):
        item = build(Item, items_path, f"line {line_no}", raw)
        if item.item_id in items:
            raise DataError(f"{items_path}: record line {line_no} field 'item_id': duplicate item id {item.item_id!r}")
        items[item.item_id] = item
    users: dict[str, UserHistory] = {}
    for line_no, raw in _lines(histories_path):
        user = build(UserHistory, histories_path, f"line {line_no}", raw)
        if user.user_id in users:
            raise DataError(f"{histories_path}: record line {line_no} field 'user_id': duplicate user id {user.user_id!r}")
        for position, event in enumerate(user.interactions):
            if event.item_id not in items:
                raise DataError(
                    f"{histories_path}: record line {line_no} field 'interactions.{position}.item_id': "
                    f"item {event.item_id!r} is not in {ITEMS_FILE}"
                )
        users[user.user_id] = user
    if not items:
        raise DataError(f"{items_path}: no items")
    return Dataset(name=folder.name, items=items, users=users, source_files=(str(items_path), str(histories_path)))
