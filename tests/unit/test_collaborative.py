"""The collaborative retriever and its SASRec: no leakage of held-out targets, the beta mix, the fallback without a
user, save/load and the per-split model cache, on hand-made data (no Chroma, no MiniLM: a bag-of-words embedder)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recgpt.data.dataset import Dataset
from recgpt.data.records import Interaction, Item, UserHistory
from recgpt.eval import baselines
from recgpt.graph import Context
from recgpt.services.resources import Registry, default_registry
from recgpt.tools.retrieval import sequential
from recgpt.tools.retrieval.collaborative import CollaborativeRetriever, minmax
from recgpt.tools.retrieval.protocol import ItemHit, Retriever, UserSignals
from recgpt.tools.retrieval.sequential import SASRec, load_or_train, model_path
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, FakeRetriever, _tokens, fake_graph

TINY = dict(dim=16, layers=1, heads=1, maxlen=4, epochs=20, batch_size=16, lr=1e-2, dropout=0.1)
"""A SASRec small enough to learn 'b1 follows a1' in about half a second."""
QUICK = {**TINY, "epochs": 1}
"""For the cache tests: what is learnt does not matter there."""


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Models this small train 10x faster on one thread than on two when the machine is busy (thread hand-offs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SASRec:
    """One tiny SASRec of the shop's test split, trained once for the tests that need a learnt model."""
    return load_or_train(shop(), "test", tmp_path_factory.mktemp("collab"), hparams=TINY)


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A stand-in for MiniLM: hashed word counts, unit length (shared words -> positive cosine)."""
    out = np.zeros((len(texts), 1024))
    for row, text in enumerate(texts):
        for word in _tokens(text):
            out[row, zlib.crc32(word.encode()) % 1024] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def item(item_id: str, title: str, *path: str) -> Item:
    return Item(item_id=item_id, title=title, category_path=path)


def shop() -> Dataset:
    """Pens, refills and notebooks; in every history the refill b1 comes right after the gel pen a1."""
    items = [item("a1", "Red gel pen", "Office", "Writing", "Pens"),
             item("b1", "Blue ink refill", "Office", "Writing", "Refills"),
             item("p2", "Black gel pen", "Office", "Writing", "Pens"),
             item("p3", "Green gel pen", "Office", "Writing", "Pens"),
             item("n1", "Spiral notebook", "Office", "Paper", "Notebooks"),
             item("n2", "Grid notebook", "Office", "Paper", "Notebooks"),
             item("n3", "Notebook cover", "Office", "Paper", "Notebooks", "Covers")]
    starts = ["n1", "n2", "p2", "p3", "n3"]
    ends = ["n2", "p3", "n1", "p2", "n3"]
    users = [UserHistory(user_id=f"u{n}", interactions=[Interaction(item_id=i) for i in
                                                        (starts[n % 5], "a1", "b1", ends[(n // 5) % 5])])
             for n in range(40)]
    return Dataset(name="shop", items={i.item_id: i for i in items}, users={u.user_id: u for u in users})


class StubModel:
    """A collaborative model with fixed logits (items it does not list are unknown: -inf)."""

    def __init__(self, logits: dict[str, float]) -> None:
        self.logits = logits
        self.asked: list[tuple[str, ...]] = []

    def knows_any(self, history: Sequence[str]) -> bool:
        return any(i in self.logits for i in history)

    def score(self, history: Sequence[str], item_ids: Sequence[str]) -> list[float]:
        self.asked.append(tuple(history))
        return [self.logits.get(i, float("-inf")) for i in item_ids]


def retriever(dataset: Dataset, model: Any, beta: float, depth: int = 10, splits: list[str] | None = None) -> CollaborativeRetriever:
    def model_for(split: str) -> Any:
        if splits is not None:
            splits.append(split)
        return model

    return CollaborativeRetriever(dataset, FakeRetriever(dataset), model_for, bag_of_words, beta=beta, depth=depth)


# -- no leakage -------------------------------------------------------------------------------------------------------

def test_training_sequences_hold_out_the_targets_of_their_split() -> None:
    data = shop()
    test, validation, full = (data.training_sequences(s) for s in ("test", "validation", "full"))
    for user_id, user in data.users.items():
        events = [e.item_id for e in user.interactions]
        test_target, validation_target = data.example(user_id, "test").target, data.example(user_id, "validation").target
        assert test_target is not None and validation_target is not None
        assert test[user_id] == events[:-1] and test_target.item_id == events[-1]  # the test target is not the end...
        assert validation[user_id] == events[:-2]  # ...and validation excludes both held-out targets
        assert validation_target.item_id == events[-2] == test[user_id][-1]  # (the test split may learn from it)
        assert full[user_id] == events
    assert baselines.training_sequences(data, "test") == test  # the baselines' name is the same definition
    assert sequential.training_sequences(data, "validation") == validation


def test_no_test_target_ends_a_training_sequence_of_the_test_split(small_dataset_dir: Path) -> None:
    data = default_registry().dataset(str(small_dataset_dir))
    sequences = data.training_sequences("test")
    for user_id in data.split_users("test"):
        target = data.example(user_id, "test").target
        assert target is not None and len(sequences[user_id]) == len(data.users[user_id].interactions) - 1
        assert sequences[user_id][-1:] != [target.item_id]
    assert "u3" not in sequences  # no interactions, no split


# -- SASRec: scores, save/load, the cache ------------------------------------------------------------------------------

def test_sasrec_scores_the_learnt_successor_highest_and_unknown_items_minus_inf(trained: SASRec) -> None:
    model = trained
    scores = dict(zip(["b1", "p2", "n1", "zz"], model.score(["n1", "a1"], ["b1", "p2", "n1", "zz"])))
    assert scores["b1"] > max(scores["p2"], scores["n1"]) and scores["zz"] == float("-inf")
    assert model.knows_any(["zz", "a1"]) and not model.knows_any(["zz"])


def test_save_and_load_roundtrip(trained: SASRec, tmp_path: Path) -> None:
    model = trained
    path = model.save(tmp_path / "m" / "model.pt")
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # the temporary file was renamed away
    again = SASRec.load(path)
    assert again.hparams == model.hparams and again.items == model.items and again.maxlen == model.maxlen
    assert again.losses == model.losses and again.train_seconds == pytest.approx(model.train_seconds)
    history, candidates = ["n2", "a1"], ["b1", "p2", "n3"]
    assert again.score(history, candidates) == pytest.approx(model.score(history, candidates))
    assert again.recommend(history, 3) == model.recommend(history, 3)


def test_a_cached_model_is_reused_not_retrained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = shop()
    registry = Registry()
    first = registry.sasrec(data, "validation", hparams=QUICK, cache_dir=tmp_path)
    path = model_path(data, "validation", tmp_path, QUICK)
    assert path.is_file() and path.name.startswith("shop-" + data.content_hash() + "-validation-")

    def refuse(self: SASRec, sequences: dict[str, list[str]]) -> SASRec:
        raise AssertionError("retrained")

    monkeypatch.setattr(SASRec, "fit", refuse)
    assert registry.sasrec(data, "validation", hparams=QUICK, cache_dir=tmp_path) is first  # the registry's
    reloaded = Registry().sasrec(data, "validation", hparams=QUICK, cache_dir=tmp_path)  # another registry: the file
    assert reloaded is not first and reloaded.score(["a1"], ["b1"]) == pytest.approx(first.score(["a1"], ["b1"]))
    assert model_path(data, "test", tmp_path, QUICK) != path  # each split has its own model
    assert model_path(data, "validation", tmp_path, TINY) != path  # and each set of hparams


def test_an_unreadable_model_file_is_retrained(tmp_path: Path) -> None:
    data = shop()
    path = model_path(data, "test", tmp_path, QUICK)
    path.write_bytes(b"cut short")
    model = load_or_train(data, "test", tmp_path, hparams=QUICK)
    assert model.net is not None and SASRec.load(path).items == model.items


# -- the retriever -----------------------------------------------------------------------------------------------------

def test_minmax_normalises_and_floors_unknowns() -> None:
    assert minmax([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    assert minmax([2.0, 2.0]) == [0.5, 0.5] and minmax([float("-inf")] * 2) == [0.5, 0.5]
    assert minmax([float("-inf"), 1.0, 3.0]) == [0.0, 0.0, 1.0]


def test_it_satisfies_the_retriever_protocol(isolated_home: Path) -> None:
    data = shop()
    assert isinstance(retriever(data, StubModel({}), 0.5), Retriever)


def test_beta_one_is_semantic_order_and_beta_zero_collaborative_order() -> None:
    data = shop()
    logits = {"a1": 0.0, "b1": 1.0, "p2": 3.0, "p3": 2.0, "n1": -1.0, "n2": 0.5, "n3": 0.2}
    user = UserSignals(user_id="u0", history_item_ids=("n1", "a1"), split="test")
    exclude = {"n1", "a1"}
    semantic = [[h.item_id for h in r] for r in retriever(data, StubModel(logits), 1.0).search_items(["green gel pen"], 5, exclude, user)]
    collab = retriever(data, StubModel(logits), 0.0).search_items(["green gel pen"], 5, exclude, user)[0]
    expected_semantic = [h.item_id for h in FakeRetriever(data).search_items(["green gel pen"], 5, exclude)[0]]
    assert semantic[0][:2] == expected_semantic[:2] == ["p3", "p2"]  # the two gel pens, the green one first
    assert [h.item_id for h in collab] == ["p2", "p3", "b1", "n2", "n3"]  # logits, highest first
    assert all(h.collaborative is not None and h.semantic is not None for h in collab)
    assert collab[0].collaborative == 1.0 and collab[-1].collaborative == 0.0
    assert all(h.score == pytest.approx(h.collaborative) for h in collab)  # beta 0: the mix is the collaborative term
    assert all(h.item_id not in exclude for h in collab)


def test_the_mix_is_beta_weighted_and_distance_stays_semantic() -> None:
    data = shop()
    logits = {"a1": 0.0, "b1": 5.0, "p2": 0.0, "p3": 1.0, "n1": 0.0, "n2": 0.0, "n3": 0.0}
    user = UserSignals(user_id="u0", history_item_ids=("a1",), split="validation")
    hits = retriever(data, StubModel(logits), 0.3).search_items(["gel pen"], 6, {"a1"}, user)[0]
    for h in hits:
        assert h.score == pytest.approx(0.3 * h.semantic + 0.7 * h.collaborative)
        similarity = float(bag_of_words(["gel pen"])[0] @ bag_of_words([data.items[h.item_id].text()])[0])
        assert h.distance == pytest.approx(1.0 - similarity)  # the raw cosine distance, as Chroma reports it
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_the_tags_category_adds_candidates_the_text_search_missed() -> None:
    data = shop()
    # depth 1: the text search proposes one notebook; the nearest category ("... > Notebooks") adds its best item by
    # logits, and the cover below it ("Notebooks > Covers") counts as inside
    logits = {"a1": 0.0, "b1": 0.0, "p2": 0.0, "p3": 0.0, "n1": 0.0, "n2": 0.0, "n3": 9.0}
    user = UserSignals(user_id="u0", history_item_ids=("a1",))
    hits = retriever(data, StubModel(logits), 0.0, depth=1).search_items(["spiral notebooks"], 1, {"a1"}, user)[0]
    assert [h.item_id for h in hits] == ["n3"]


def test_a_grounded_tag_returns_its_category_first_and_its_parent_only_when_it_runs_dry() -> None:
    """The demo's 'photo paper' tag showed copy paper: a grounded tag's items now come from its category (a
    popular outsider with the highest logit never enters), then from its parent, each hit saying which."""
    data = shop()
    logits = {"a1": 0.0, "b1": 9.0, "p2": 1.0, "p3": 2.0, "n1": 0.5, "n2": 0.7, "n3": 0.1}
    user = UserSignals(user_id="u0", history_item_ids=("a1",), split="test")
    pens = "Office > Writing > Pens"
    hits = retriever(data, StubModel(logits), 0.0).search_items(["gel pen"], 2, {"a1"}, user, categories=[pens])[0]
    assert [(h.item_id, h.source) for h in hits] == [("p3", "category"), ("p2", "category")]  # b1 (9.0) stays out
    hits = retriever(data, StubModel(logits), 0.0).search_items(["gel pen"], 4, {"a1"}, user, categories=[pens])[0]
    assert [(h.item_id, h.source) for h in hits] == [("p3", "category"), ("p2", "category"), ("b1", "parent"),
                                                       ("n2", "parent")]  # Writing's refill, then the top level's
    assert [h.item_id for h in hits].count("p3") == 1  # an ancestor's tier never repeats the category's items
    covers = retriever(data, StubModel(logits), 0.0).search_items(["notebook"], 3, set(), user,
                                                                  categories=["Office > Paper > Notebooks"])[0]
    assert {h.item_id for h in covers} == {"n1", "n2", "n3"} and {h.source for h in covers} == {"category"}  # below counts
    free = retriever(data, StubModel(logits), 0.0).search_items(["gel pen"], 2, {"a1"}, user)[0]
    assert {h.source for h in free} == {"semantic"} and free[0].item_id == "b1"  # a free tag: neighbours, by SASRec


def test_without_a_user_or_a_known_history_it_is_the_semantic_retriever(tmp_path: Path) -> None:
    data = shop()
    splits: list[str] = []
    stub = StubModel({"b1": 1.0})
    made = retriever(data, stub, 0.0, splits=splits)
    plain = FakeRetriever(data).search_items(["gel pen", "notebook"], 3, {"p2"})
    assert made.search_items(["gel pen", "notebook"], 3, {"p2"}) == plain
    assert made.search_items(["gel pen", "notebook"], 3, {"p2"}, UserSignals(user_id="u9")) == plain  # empty history
    assert made.search_items(["gel pen", "notebook"], 3, {"p2"}, UserSignals(user_id="u9", history_item_ids=("zz",))) == plain
    assert splits == ["full"] and not stub.asked  # asked for the model of the user's split; never scored
    assert made.search_items([], 3) == [] and made.nearest_categories(["notebook"]) == FakeRetriever(data).nearest_categories(["notebook"])


def test_a_trained_model_ranks_the_learnt_successor_first(trained: SASRec) -> None:
    data = shop()
    made = CollaborativeRetriever(data, FakeRetriever(data), lambda split: trained, bag_of_words, beta=0.0, depth=10)
    user = UserSignals(user_id="new", history_item_ids=("n2", "a1"), split="test")
    hits = made.search_items(["office writing paper"], 3, {"n2", "a1"}, user)[0]
    assert hits[0].item_id == "b1" and hits[0].collaborative == 1.0


def test_the_graph_passes_the_split_and_shows_both_terms(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    splits: list[str] = []
    stub = StubModel({"p1": 0.0, "n1": 0.0, "p2": 0.0, "n2": 2.0, "d1": 1.0, "c1": -1.0})

    def factory(dataset: Dataset) -> CollaborativeRetriever:
        return retriever(dataset, stub, 0.5, splits=splits)

    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    out = asyncio.run(fake_graph(small_dataset_dir, [], factory).ainvoke(
        {"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"}, context=ctx))
    assert splits and set(splits) == {"test"} and stub.asked[0] == ("p1", "n1", "p2")
    items = [i for r in out["recommendations"] for i in r.items]
    assert items and all(i.semantic is not None and i.collaborative is not None and i.score is not None for i in items)
    assert all(i.item_id not in {"p1", "n1", "p2"} for i in items)


def test_item_hits_without_the_terms_still_construct() -> None:
    hit = ItemHit(item_id="x", title="X", category="A", distance=0.1)
    assert hit.semantic is None and hit.collaborative is None and hit.score is None


def test_the_semantic_candidates_are_exact_whatever_order_the_backend_answers_in() -> None:
    """An approximate index (Chroma's HNSW) answered the same query with other neighbours in another process; the
    candidates come from exact cosine over the item vectors instead, so the backend's order cannot change a ranking."""
    data = shop()
    logits = {"a1": 0.0, "b1": 1.0, "p2": 3.0, "p3": 2.0, "n1": -1.0, "n2": 0.5, "n3": 0.2}
    user = UserSignals(user_id="u0", history_item_ids=("n1", "a1"), split="test")

    class Reversed(FakeRetriever):
        def search_items(self, queries, k, exclude=frozenset(), user=None, categories=None):  # type: ignore[no-untyped-def]
            return [list(reversed(hits)) for hits in super().search_items(queries, len(self.dataset.items), exclude, user, categories)][:k]

    def ranked(semantic: FakeRetriever) -> list[list[str]]:
        made = CollaborativeRetriever(data, semantic, lambda split: StubModel(logits), bag_of_words, beta=0.5, depth=2)
        return [[h.item_id for h in hits] for hits in made.search_items(["green gel pen", "notebook"], 4, {"n1", "a1"}, user)]

    assert ranked(FakeRetriever(data)) == ranked(Reversed(data)) and all(ranked(FakeRetriever(data)))


def test_a_grounded_tag_whose_whole_department_is_dry_gets_neighbours_not_nothing() -> None:
    data = shop()
    data.items["cd"] = item("cd", "Pop music CD", "Pop")
    logits = {"a1": 0.0, "b1": 1.0, "p2": 0.0, "p3": 0.0, "n1": 0.0, "n2": 0.0, "n3": 0.0, "cd": 0.0}
    user = UserSignals(user_id="u0", history_item_ids=("a1", "cd"), split="test")
    hits = retriever(data, StubModel(logits), 0.0).search_items(["pop music"], 2, {"a1", "cd"}, user, categories=["Pop"])[0]
    assert len(hits) == 2 and {h.source for h in hits} == {"semantic"}
