"""A run's parts are resolved once, as objects: two graphs on two datasets in one process never share data, a registry
keeps what it made, the graph makes no blocking call on the event loop, and a seed an endpoint cannot take is dropped
with a flag instead of reaching the server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster

from recgpt.agents import common
from recgpt.errors import RecGPTError
from recgpt.graph import Context, build_graph
from recgpt.services.resources import SEED_DROPPED, Registry, resolve
from tests.conftest import write_jsonl
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, FakeRetriever, fake_graph, fake_resources

CTX = dict(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")


@pytest.fixture()
def garden_dir(tmp_path: Path) -> Path:
    """A second shop that shares no item, category or user with `small_dataset_dir`."""
    folder = tmp_path / "garden"
    folder.mkdir()
    items = [
        {"item_id": "g1", "title": "Trowel with ash handle", "category_path": ["Garden", "Tools", "Hand Tools"]},
        {"item_id": "g2", "title": "Pruning shears, bypass", "category_path": ["Garden", "Tools", "Hand Tools"]},
        {"item_id": "s1", "title": "Tomato seeds, heirloom mix", "category_path": ["Garden", "Seeds", "Vegetables"]},
        {"item_id": "s2", "title": "Sunflower seeds, giant", "category_path": ["Garden", "Seeds", "Flowers"]},
        {"item_id": "h1", "title": "Garden hose 50 ft", "category_path": ["Garden", "Watering", "Hoses"]},
    ]
    write_jsonl(folder / "items.jsonl", items)
    write_jsonl(folder / "histories.jsonl", [
        {"user_id": "u1", "interactions": [{"item_id": "g1"}, {"item_id": "s1"}, {"item_id": "g2"}, {"item_id": "s2"}]},
        {"user_id": "u2", "interactions": [{"item_id": "h1"}, {"item_id": "s2"}, {"item_id": "g1"}]},
    ])
    return folder


def test_two_graphs_on_two_datasets_in_one_process_never_see_each_others_data(
        fake_llm: FakeLLM, small_dataset_dir: Path, garden_dir: Path, isolated_home: Path) -> None:
    registry = Registry()
    shop, garden = (fake_resources(d, registry=registry) for d in (small_dataset_dir, garden_dir))
    graphs = {"shop": build_graph(shop, plugins=[]), "garden": build_graph(garden, plugins=[])}

    async def both() -> list[dict[str, Any]]:  # concurrently, in one event loop: nothing is resolved by a name
        return list(await asyncio.gather(*(g.ainvoke({"user_id": "u1", "split": "test"}, context=Context(**CTX))
                                           for g in graphs.values())))

    out = dict(zip(graphs, asyncio.run(both())))
    for name, resources in (("shop", shop), ("garden", garden)):
        state = out[name]
        categories = {item.category for item in resources.dataset.items.values()}
        assert state["dataset"] == resources.dataset.name
        assert state["tags"] and all(t.category in categories for t in state["tags"])  # grounded in its own vocabulary
        items = [i for r in state["recommendations"] for i in r.items]
        assert items and {i.item_id for i in items} <= set(resources.dataset.items)
        history = {resources.dataset.items[i].title for i in state["history_item_ids"]}
        assert all(title in state["shared_prefix"] for title in history)
    assert "Trowel" not in out["shop"]["shared_prefix"] and "Gel pens" not in out["garden"]["shared_prefix"]


def test_a_run_naming_another_dataset_is_refused_in_one_line(fake_llm: FakeLLM, small_dataset_dir: Path,
                                                             garden_dir: Path, isolated_home: Path) -> None:
    graph = fake_graph(small_dataset_dir, [])
    with pytest.raises(RecGPTError, match="this graph serves dataset 'shop', not") as caught:
        asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(garden_dir), "split": "test"}, context=Context(**CTX)))
    assert "\n" not in str(caught.value)
    named = asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"},
                                      context=Context(**CTX)))  # the name it was resolved by is its own
    assert named["dataset"] == "shop"


def test_a_registry_resolves_each_part_once_and_another_registry_shares_nothing(
        small_dataset_dir: Path, isolated_home: Path) -> None:
    made: list[Any] = []

    def factory(dataset: Any) -> FakeRetriever:
        made.append(dataset)
        return FakeRetriever(dataset)

    registry = Registry()
    first = registry.resources(str(small_dataset_dir), retriever=factory)
    again = registry.resources(str(small_dataset_dir), retriever=factory)
    assert again.dataset is first.dataset and again.retriever is first.retriever and len(made) == 1
    assert first.vocabulary("leaf") is again.vocabulary("leaf") and first.vocabulary("off") is None
    other = Registry().resources(str(small_dataset_dir), retriever=factory)
    assert other.dataset is not first.dataset and other.retriever is not first.retriever and len(made) == 2


def test_office_from_two_data_folders_is_two_datasets(tmp_path: Path) -> None:
    """`load_dataset` was cached by name, so a changed data folder was never read; the registry keys by folder too."""
    for root, title in (("one", "Blue pen"), ("two", "Red stapler")):
        folder = tmp_path / root / "amazon2014_office"
        folder.mkdir(parents=True)
        (folder / "Office.item.json").write_text(json.dumps({"1": {"title": title, "categories": "Office, Pens"}}))
        (folder / "Office.inter.json").write_text(json.dumps({"u": ["1"]}))
    registry = Registry()
    one, two = (registry.dataset("office", data_dir=tmp_path / root) for root in ("one", "two"))
    assert one.items["1"].title == "Blue pen" and two.items["1"].title == "Red stapler"
    assert registry.dataset("office", data_dir=tmp_path / "one") is one


def test_the_graph_makes_no_blocking_call_on_the_event_loop(fake_llm: FakeLLM, small_dataset_dir: Path,
                                                           isolated_home: Path) -> None:
    """What `langgraph dev` enforces without --allow-blocking (blockbuster, with the calls it tolerates)."""
    resources = fake_resources(small_dataset_dir)
    graph = build_graph(resources, plugins=[])
    ctx = Context(**{**CTX, "explanation_mode": "meta", "judge_mode": "agent"})
    detector = BlockBuster()
    for name in [n for n in detector.functions if n.startswith("os.path.")] + [
            "os.stat", "os.listdir", "os.remove", "io.BufferedReader.read", "io.BufferedWriter.write",
            "io.TextIOWrapper.read", "io.TextIOWrapper.write", "threading.Lock.acquire"]:  # as langgraph dev does
        detector.functions.pop(name).deactivate()
    detector.activate()
    try:
        out = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=ctx))
    finally:
        detector.deactivate()
    assert out["recommendations"] and out["explanations"] and out["judgements"]


def test_a_seed_the_endpoint_cannot_take_is_dropped_and_flagged(fake_llm: FakeLLM, small_dataset_dir: Path,
                                                                isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int | None] = []
    real_chat_model = common.chat_model

    def recording(endpoint: Any, temperature: float, max_tokens: int, seed: int | None = None) -> Any:
        sent.append(seed)
        return real_chat_model(endpoint, temperature, max_tokens, seed)

    monkeypatch.setattr(common, "chat_model", recording)
    run_dir = isolated_home / "run"
    run_dir.mkdir(parents=True)
    port = int(DEAD_ENDPOINT.split(":")[2].split("/")[0])
    (run_dir / f"vllm-{port}.json").write_text(json.dumps({"pid": 1, "port": port, "platform": "cpu"}))
    graph = fake_graph(small_dataset_dir, [])
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=Context(**CTX, seed=7)))
    assert sent and all(seed is None for seed in sent) and SEED_DROPPED in out["flags"]

    (run_dir / f"vllm-{port}.json").write_text(json.dumps({"pid": 1, "port": port, "platform": "gpu"}))
    sent.clear()
    out = asyncio.run(fake_graph(small_dataset_dir, []).ainvoke({"user_id": "u1", "split": "test"},
                                                                  context=Context(**CTX, seed=7)))
    assert sent and all(seed is not None for seed in sent) and SEED_DROPPED not in out["flags"]


def test_build_graph_without_resources_resolves_the_configured_dataset(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.settings import get_settings

    monkeypatch.setenv("RECGPT_DATASET", str(small_dataset_dir))
    monkeypatch.setenv("RECGPT_RETRIEVER", "tests.unit.fakes:FakeRetriever")
    get_settings.cache_clear()
    try:
        resources = resolve(registry=Registry())
        assert resources.dataset.name == "shop" and isinstance(resources.retriever, FakeRetriever)
    finally:
        get_settings.cache_clear()


def test_under_ci_a_missing_data_folder_fails_the_run_instead_of_skipping(tmp_path: Path) -> None:
    env = {**os.environ, "CI": "true", "RECGPT_TEST_SHARED_DATA": str(tmp_path / "no-such-data")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_agents.py"],
                         cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "the real datasets are missing" in run.stdout + run.stderr
