"""Shared fixtures: isolated RECGPT_HOME per session and small JSONL datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SHARED_DATA = Path(os.environ.get("RECGPT_TEST_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""The real datasets beside the checkout (RECGPT_TEST_SHARED_DATA overrides it, for the test of the CI guard below)."""

IN_CI = os.environ.get("CI", "").lower() == "true"

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir() and not IN_CI,
                                       reason="shared data folder absent (with CI=true this is a failure, not a skip)")
"""Tests that read the real datasets: skipped on a machine without them, never under CI, where a run could otherwise
pass by skipping every integration test."""


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI=true a missing ../shared/data fails the whole run at once, in one line, instead of skipping."""
    if IN_CI and not SHARED_DATA.is_dir():
        pytest.exit(f"CI=true but the real datasets are missing at {SHARED_DATA}: the integration tests need them "
                    "(a run must not pass by skipping)", returncode=4)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def small_dataset_dir(tmp_path: Path) -> Path:
    """A 6-item catalogue and 3 users, in the documented JSONL format."""
    folder = tmp_path / "shop"
    folder.mkdir()
    items = [
        {"item_id": "p1", "title": "Gel pens, 12 colours", "category_path": ["Office", "Writing", "Pens"], "brand": "Acme"},
        {"item_id": "p2", "title": "Ballpoint pens, black, 24 pack", "category_path": ["Office", "Writing", "Pens"]},
        {"item_id": "n1", "title": "Spiral notebook A5 ruled", "category_path": ["Office", "Paper", "Notebooks"]},
        {"item_id": "n2", "title": "Sticky notes 3x3 yellow", "category_path": ["Office", "Paper", "Notes"]},
        {"item_id": "d1", "title": "Desk lamp LED dimmable", "category_path": ["Office", "Furniture", "Lamps"]},
        {"item_id": "c1", "title": "Ergonomic office chair mesh", "category_path": ["Office", "Furniture", "Chairs"]},
    ]
    users = [
        {"user_id": "u1", "interactions": [{"item_id": "p1"}, {"item_id": "n1"}, {"item_id": "p2"}, {"item_id": "n2"}]},
        {"user_id": "u2", "interactions": [{"item_id": "d1", "timestamp": 1000}, {"item_id": "c1", "timestamp": 2000},
                                            {"item_id": "p1", "timestamp": 3000}], "profile": {"age": 40, "occupation": "writer"}},
        {"user_id": "u3", "interactions": []},
    ]
    write_jsonl(folder / "items.jsonl", items)
    write_jsonl(folder / "histories.jsonl", users)
    return folder


@pytest.fixture()
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RECGPT_HOME at a temporary folder for one test."""
    from recgpt.settings import get_settings

    home = tmp_path / "home"
    monkeypatch.setenv("RECGPT_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
