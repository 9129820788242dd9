"""The catalogue index in a Chroma server (`recgpt index serve`) retrieves exactly what the embedded one does."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.chroma import CatalogueIndex
from recgpt.tools.retrieval.chroma_server import heartbeat_ok, start_chroma, stop_chroma
from recgpt.tools.retrieval.embeddings import Embedder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_and_embedded_indexes_retrieve_alike(small_dataset_dir: Path, tmp_path: Path) -> None:
    data = default_registry().dataset(str(small_dataset_dir))
    port = free_port()
    url = start_chroma(tmp_path / "server-data", port, tmp_path / "run")
    try:
        assert heartbeat_ok(url) and start_chroma(tmp_path / "server-data", port, tmp_path / "run") == url  # reused
        embed = Embedder().chroma_function()
        served = CatalogueIndex(data, tmp_path / "unused", embed, server_url=url)
        again = CatalogueIndex(data, tmp_path / "unused", embed, server_url=url)  # a second builder: idempotent, same index
        embedded = CatalogueIndex(data, tmp_path / "embedded", embed)
        queries = ["gel pens for notes", "a lamp for the desk", "paper"]
        for index in (served, again):
            for mine, theirs in zip(index.search_items(queries, 3, exclude={"p1"}), embedded.search_items(queries, 3, exclude={"p1"})):
                assert [h.item_id for h in mine] == [h.item_id for h in theirs]
                assert [h.distance for h in mine] == pytest.approx([h.distance for h in theirs], abs=1e-5)
            assert [[c.category for c in hits] for hits in index.nearest_categories(queries, 2)] == \
                [[c.category for c in hits] for hits in embedded.nearest_categories(queries, 2)]
        assert served.items.count() == len(data.items)
    finally:
        assert stop_chroma(tmp_path / "run", port)
    assert not stop_chroma(tmp_path / "run", port)
