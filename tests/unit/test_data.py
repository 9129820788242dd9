from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.data import Split
from recgpt.data.jsonl import load_jsonl
from recgpt.data.movielens import load_movielens
from recgpt.data.office import load_office
from recgpt.errors import DataError, UnknownUserError
from recgpt.services.resources import default_registry
from tests.conftest import SHARED_DATA, needs_shared_data, write_jsonl

needs_shared = needs_shared_data


@needs_shared
def test_office_loads_real_counts_and_unescapes_html() -> None:
    data = load_office(SHARED_DATA / "amazon2014_office")
    assert len(data.users) == 4905
    assert len(data.items) == 2420
    assert sum(len(u.interactions) for u in data.users.values()) == 53258
    assert data.items["2"].title.startswith("AT&T 210")  # was "AT&amp;T" in the file
    assert data.items["0"].category_path == ("Office Electronics", "Telephones & Accessories", "Cordless Telephones")
    assert all(item.title.strip() for item in data.items.values())  # 3 empty titles were filled


@needs_shared
def test_movielens_loads_sorted_by_time_with_profiles() -> None:
    data = load_movielens(SHARED_DATA / "movielens_100k")
    assert len(data.users) == 943 and len(data.items) == 1682
    user = data.users["1"]
    stamps = [e.timestamp for e in user.interactions]
    assert stamps == sorted(stamps)
    assert user.profile.age == 24 and user.profile.occupation == "technician"
    assert data.items["1"].title == "Toy Story (1995)"
    assert data.items["1"].genres == ("Animation", "Children's", "Comedy")


def test_split_is_leave_last_out_without_leakage(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    test = data.example("u1", Split.test)
    val = data.example("u1", Split.validation)
    assert [e.item_id for e in test.history] == ["p1", "n1", "p2"] and test.target.item_id == "n2"
    assert [e.item_id for e in val.history] == ["p1", "n1"] and val.target.item_id == "p2"
    assert test.target not in test.history and val.target not in val.history
    assert data.training_prefix("u1") == val.history
    assert len(data.example("u1", Split.full).history) == 4 and data.example("u1", "full").target is None
    assert data.split_users("test") == ["u1", "u2"]  # u3 has no history


def test_split_needs_three_interactions(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    with pytest.raises(DataError, match="u3.*needs at least 3"):
        data.example("u3", Split.test)


def test_unknown_user_names_the_dataset(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    with pytest.raises(UnknownUserError, match="'nobody' is not in dataset 'shop'"):
        data.user("nobody")


def test_jsonl_invalid_field_names_file_line_and_field(small_dataset_dir: Path) -> None:
    path = small_dataset_dir / "items.jsonl"
    path.write_text(path.read_text() + json.dumps({"item_id": "x", "title": ""}) + "\n")
    with pytest.raises(DataError) as info:
        load_jsonl(small_dataset_dir)
    message = str(info.value)
    assert "items.jsonl" in message and "line 7" in message and "'title'" in message


def test_jsonl_broken_json_line(small_dataset_dir: Path) -> None:
    path = small_dataset_dir / "histories.jsonl"
    path.write_text(path.read_text() + '{"user_id": "u9", "interactions": [\n')
    with pytest.raises(DataError, match=r"histories.jsonl: record line 4 .*not valid JSON"):
        load_jsonl(small_dataset_dir)


def test_jsonl_unknown_item_and_duplicates(small_dataset_dir: Path) -> None:
    path = small_dataset_dir / "histories.jsonl"
    original = path.read_text()
    path.write_text(original + json.dumps({"user_id": "u9", "interactions": [{"item_id": "ghost"}]}) + "\n")
    with pytest.raises(DataError, match=r"interactions.0.item_id.*'ghost' is not in items.jsonl"):
        load_jsonl(small_dataset_dir)
    path.write_text(original + json.dumps({"user_id": "u1"}) + "\n")
    with pytest.raises(DataError, match="duplicate user id 'u1'"):
        load_jsonl(small_dataset_dir)


def test_jsonl_wrong_types_and_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    with pytest.raises(DataError, match="items.jsonl: file not found"):
        load_jsonl(folder)
    write_jsonl(folder / "items.jsonl", [{"item_id": "a", "title": "A"}])
    write_jsonl(folder / "histories.jsonl", [{"user_id": "u", "interactions": "not-a-list"}])
    with pytest.raises(DataError, match=r"line 1 field 'interactions'"):
        load_jsonl(folder)
    (folder / "histories.jsonl").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="not UTF-8"):
        load_jsonl(folder)


def test_office_malformed_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Office.item.json: file not found"):
        load_office(tmp_path)
    (tmp_path / "Office.item.json").write_text('{"0": {"title": "x", "categories": "A, B"}')
    (tmp_path / "Office.inter.json").write_text("{}")
    with pytest.raises(DataError, match="Office.item.json: not valid JSON at line 1"):
        load_office(tmp_path)
    (tmp_path / "Office.item.json").write_text('{"0": {"title": "x", "categories": 5}}')
    with pytest.raises(DataError, match="record '0' field 'categories'"):
        load_office(tmp_path)
    (tmp_path / "Office.item.json").write_text('{"0": {"title": "x", "categories": "A, B"}}')
    (tmp_path / "Office.inter.json").write_text('{"7": [0, 1]}')
    with pytest.raises(DataError, match="user '7' interaction #1 field 'item_id': item '1' is not in the catalogue"):
        load_office(tmp_path)


def test_movielens_malformed_row(tmp_path: Path) -> None:
    (tmp_path / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tToy Story\n")
    with pytest.raises(DataError, match=r"ml-100k.item: record line 2 .*expected 4 tab-separated fields, got 2"):
        load_movielens(tmp_path)


def test_load_dataset_rejects_unknown_name() -> None:
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        default_registry().dataset("nope")
