"""Adapter for Amazon 2014 Office Products 5-core (LC-Rec/P5 preprocessing).

Files: `Office.inter.json` (user id -> item ids, oldest first) and `Office.item.json`
(item id -> title, description, brand, categories joined with ", "). There are no timestamps:
order is review order. Every interaction is a review of a bought item, so its action is
"purchase". HTML entities (`&amp;`) are unescaped.

Known limitation: the source joined category names with ", " and a few names contain ", "
themselves ("Calendars, Planners & Personal Organizers"), so such a name splits into two path
levels. The full path string is unaffected; per-level metrics inherit the ambiguity.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from recgpt.data.dataset import Dataset
from recgpt.data.records import Item, UserHistory
from recgpt.data.validation import build
from recgpt.errors import DataError

ITEM_FILE = "Office.item.json"
INTER_FILE = "Office.inter.json"


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found (set RECGPT_DATA_DIR to the folder holding the datasets)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def _unescape(value: Any) -> Any:
    return html.unescape(value) if isinstance(value, str) else value


def load_office(folder: Path) -> Dataset:
    item_path, inter_path = folder / ITEM_FILE, folder / INTER_FILE
    raw_items = _read_json(item_path)
    raw_inter = _read_json(inter_path)
    if not isinstance(raw_items, dict):
        raise DataError(f"{item_path}: expected an object of item id -> item")
    if not isinstance(raw_inter, dict):
        raise DataError(f"{inter_path}: expected an object of user id -> list of item ids")

    items: dict[str, Item] = {}
    for item_id, raw in raw_items.items():
        if not isinstance(raw, dict):
            raise DataError(f"{item_path}: record {item_id!r} field '<record>': expected an object")
        categories = _unescape(raw.get("categories") or "")
        if not isinstance(categories, str):
            raise DataError(f"{item_path}: record {item_id!r} field 'categories': expected a string")
        path = tuple(c.strip() for c in categories.split(", ") if c.strip())
        title = _unescape(raw.get("title"))
        if isinstance(title, str) and not title.strip():
            # 3 of 2,420 Office items have no title; they still appear in histories, so we name
            # them from their description or leaf category instead of dropping interactions.
            description = _unescape(raw.get("description")) or ""
            title = description[:80].strip() or f"untitled {path[-1] if path else 'item'} #{item_id}"
        record = {
            "item_id": str(item_id),
            "title": title,
            "brand": _unescape(raw.get("brand")) or None,
            "description": _unescape(raw.get("description")),
            "category_path": path,
        }
        items[str(item_id)] = build(Item, item_path, repr(item_id), record)

    users: dict[str, UserHistory] = {}
    for user_id, raw in raw_inter.items():
        if not isinstance(raw, list):
            raise DataError(f"{inter_path}: record {user_id!r} field 'interactions': expected a list of item ids")
        record = {
            "user_id": str(user_id),
            "interactions": [{"item_id": str(i), "action": "purchase"} for i in raw],
        }
        users[str(user_id)] = build(UserHistory, inter_path, repr(user_id), record)
    return Dataset(name="office", items=items, users=users, source_files=(str(item_path), str(inter_path)))


