"""The retrieval seam: a `Retriever` injected into the graph is the one asked, the setting resolves to a factory,
and the Chroma implementation satisfies the protocol (tests/integration and test_grpo_rewards run Chroma for real)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from recgpt.data.dataset import Dataset
from recgpt.errors import RecGPTError
from recgpt.graph import Context, build_graph
from recgpt.services.resources import Registry, resolve
from recgpt.tools.retrieval.chroma import CatalogueIndex, ChromaRetriever
from recgpt.tools.retrieval.protocol import CategoryHit, ItemHit, Retriever, UserSignals
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, FakeRetriever, fake_graph

CTX = dict(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")


class SentinelRetriever:
    """Answers one made-up item and category for every query, so its answers are recognisable in the state."""

    made: list[SentinelRetriever] = []

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.asked: list[tuple[list[str], int, set[str], UserSignals | None]] = []
        SentinelRetriever.made.append(self)

    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset(),
                     user: UserSignals | None = None) -> list[list[ItemHit]]:
        self.asked.append((list(queries), k, set(exclude), user))
        return [[ItemHit(item_id="sentinel", title="Sentinel item", category="Sentinel > Shelf", distance=0.0)] for _ in queries]

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
        return [[CategoryHit(category="Sentinel > Shelf", distance=0.0)] for _ in queries]


def not_a_retriever(dataset: Dataset) -> object:
    return object()


@pytest.fixture()
def no_chroma(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything opens the Chroma index."""
    def refuse(*args: Any, **kwargs: Any) -> CatalogueIndex:
        raise AssertionError("Chroma was opened")

    monkeypatch.setattr(Registry, "chroma_index", refuse)


@pytest.fixture()
def configured_retriever(monkeypatch: pytest.MonkeyPatch):  # -> Callable[[str], None]
    """Set RECGPT_RETRIEVER for one test (settings are cached: cleared before and after)."""
    from recgpt.settings import get_settings

    def configure(spec: str) -> None:
        monkeypatch.setenv("RECGPT_RETRIEVER", spec)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def test_a_retriever_injected_through_the_resources_is_the_one_asked(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, no_chroma: None) -> None:
    SentinelRetriever.made.clear()
    graph = fake_graph(small_dataset_dir, [], SentinelRetriever)
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"}, context=Context(**CTX)))
    assert len(SentinelRetriever.made) == 1 and SentinelRetriever.made[0].dataset.name == "shop"
    [(queries, k, exclude, user)] = SentinelRetriever.made[0].asked
    # deep enough per tag that the items earlier tags took can be skipped: no item shows twice in one user's list
    assert queries == [t.tag for t in out["tags"]] and k == Context(**CTX).items_per_tag * len(queries)
    assert exclude == {"p1", "n1", "p2"}  # the history before the test target
    assert user == UserSignals(user_id="u1", history_item_ids=("p1", "n1", "p2"), split="test")  # in history order, its split
    # a retriever written before grounding is asked without `categories`; a grounded tag keeps its own category
    assert out["recommendations"] and all(r.tag.category for r in out["recommendations"])
    assert all(r.category == r.tag.category for r in out["recommendations"])
    shown = [[i.item_id for i in r.items] for r in out["recommendations"]]
    assert shown[0] == ["sentinel"] and all(items == [] for items in shown[1:])  # the first tag shows it, once


def test_the_configured_retriever_is_the_default_of_build_graph(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, no_chroma: None, configured_retriever: Any) -> None:
    SentinelRetriever.made.clear()
    configured_retriever(f"{__name__}:SentinelRetriever")
    out = asyncio.run(build_graph(resolve(str(small_dataset_dir), registry=Registry()), plugins=[]).ainvoke(
        {"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"}, context=Context(**CTX)))
    assert SentinelRetriever.made and out["recommendations"][0].items[0].item_id == "sentinel"


def test_a_retriever_setting_resolves_an_import_path(small_dataset_dir: Path, isolated_home: Path, configured_retriever: Any) -> None:
    registry = Registry()
    dataset = registry.dataset(str(small_dataset_dir))
    made = registry.retriever(dataset, "tests.unit.fakes:FakeRetriever")
    assert isinstance(made, FakeRetriever) and made.dataset is dataset
    hits = made.search_items(["gel pens"], 2, {"p2"})
    assert [h.item_id for h in hits[0]][0] == "p1" and "p2" not in [h.item_id for h in hits[0]]
    assert made.nearest_categories(["desk lamp"], 1)[0][0].category == dataset.items["d1"].category
    assert registry.retriever(dataset, "tests.unit.fakes:FakeRetriever") is made  # made once per registry and dataset
    configured_retriever(" tests.unit.fakes:FakeRetriever ")  # the setting is read by a registry made after it
    assert isinstance(Registry().retriever(dataset), FakeRetriever)


@pytest.mark.parametrize(("spec", "message"), [
    ("tests.unit.fakes", "must be 'chroma', 'collaborative' or look like pkg.module:callable"),
    ("", "must be 'chroma', 'collaborative' or look like pkg.module:callable"),
    ("no_such_module_xyz:make", "cannot import no_such_module_xyz"),
    ("tests.unit.fakes:Nothing", "has no 'Nothing'"),
    ("tests.unit.fakes:DEAD_ENDPOINT", "is a str, not a callable"),
])
def test_a_bad_retriever_setting_is_one_clear_line(spec: str, message: str, small_dataset_dir: Path, isolated_home: Path) -> None:
    registry = Registry()
    dataset = registry.dataset(str(small_dataset_dir))
    with pytest.raises(RecGPTError, match=message) as caught:
        registry.retriever(dataset, spec)
    assert "\n" not in str(caught.value) and "retriever" in str(caught.value)


def test_a_factory_returning_something_else_is_refused_when_called(small_dataset_dir: Path, isolated_home: Path) -> None:
    registry = Registry()
    with pytest.raises(RecGPTError, match="returned a 'object', not a Retriever"):
        registry.retriever(registry.dataset(str(small_dataset_dir)), f"{__name__}:not_a_retriever")


def test_a_bad_setting_fails_when_the_resources_are_resolved(configured_retriever: Any, small_dataset_dir: Path) -> None:
    configured_retriever("no_such_module_xyz:make")
    with pytest.raises(RecGPTError, match="cannot import"):
        resolve(str(small_dataset_dir), registry=Registry())


def test_the_chroma_implementation_satisfies_the_protocol() -> None:
    assert ChromaRetriever is CatalogueIndex and issubclass(CatalogueIndex, Retriever)
    assert isinstance(CatalogueIndex.__new__(CatalogueIndex), Retriever)  # no index built
    assert isinstance(FakeRetriever.__new__(FakeRetriever), Retriever) and not isinstance(object(), Retriever)
    for method in ("search_items", "nearest_categories"):  # runtime_checkable checks names only: check the parameters too
        ours = inspect.signature(getattr(Retriever, method)).parameters
        theirs = inspect.signature(getattr(CatalogueIndex, method)).parameters
        assert list(theirs) == list(ours) and all(theirs[p].default == ours[p].default for p in ours)
