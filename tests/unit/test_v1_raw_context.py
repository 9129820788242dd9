"""The paper-setup V1 context: the raw history, bounded by the model's window, truncated oldest-first with a flag."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from recgpt.schema.context import Context
from recgpt.services.prefix import RAW_ESTIMATE, build_raw_prefix
from recgpt.services.resources import default_registry
from recgpt.tools.context.compression import raw_history
from tests.conftest import write_jsonl
from tests.unit.fakes import fake_resources

UNREACHABLE = "http://127.0.0.1:9/v1"  # no tokenizer: the bound falls back to the conservative estimate


@pytest.fixture()
def long_history_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "films"
    folder.mkdir()
    items = [{"item_id": f"m{i}", "title": f"Film number {i} (199{i % 10}) a long and winding title about things",
              "category_path": ["Movies", ["Drama", "Comedy", "Action"][i % 3]]} for i in range(400)]
    interactions = [{"item_id": f"m{i}", "timestamp": 800_000_000 + 86_400 * i, "action": "rate", "rating": 1 + i % 5}
                    for i in range(400)]
    write_jsonl(folder / "items.jsonl", items)
    write_jsonl(folder / "histories.jsonl", [{"user_id": "cinephile", "interactions": interactions},
                                            {"user_id": "newcomer", "interactions": [{"item_id": "m1"}, {"item_id": "m2"}, {"item_id": "m3"}]}])
    return folder


def test_raw_history_lists_every_interaction_newest_first_without_summary(long_history_dir: Path) -> None:

    data = default_registry().dataset(str(long_history_dir))
    events = data.user("cinephile").interactions
    full = raw_history(events, data.items)
    lines = full.text.splitlines()
    assert len(lines) == 400 and full.n_summarised_events == 0 and "summarised" not in full.text
    assert lines[0].startswith("- 1996-") and '"Film number 399' in lines[0] and lines[0].endswith("Movies > Drama")
    assert "rate 5/5" in lines[0]
    kept = raw_history(events, data.items, keep=10)
    assert len(kept.text.splitlines()) == 10 and kept.n_summarised_events == 390 and kept.truncated
    assert '"Film number 390' in kept.text.splitlines()[-1]  # the oldest kept is the 10th newest


def test_raw_prefix_fits_the_bound_dropping_the_oldest_with_a_flag(long_history_dir: Path, isolated_home: Path) -> None:
    ctx = Context(base_url=UNREACHABLE, raw_history_tokens=2000, max_retries=0, request_timeout_s=2)
    out = asyncio.run(build_raw_prefix(ctx, fake_resources(long_history_dir), "cinephile", "test"))
    stats = out["context_stats"]
    assert stats.token_source == RAW_ESTIMATE and stats.prefix_tokens <= 2000 and stats.compression == "raw"
    assert stats.n_summarised_events > 0 and stats.n_events == 399  # the test target is held out
    dropped = [f for f in out["flags"] if f.startswith("history_truncated")]
    assert dropped == [f"history_truncated: the {stats.n_summarised_events} oldest interactions dropped to fit the raw "
                       "context in 2000 tokens"]
    prefix = out["shared_prefix"]
    assert '"Film number 397' in prefix and '"Film number 0 ' not in prefix  # newest kept, oldest dropped
    assert '"Film number 399' not in prefix  # the held-out test target never reaches the prompt
    # the search keeps as many as the bound allows: one more interaction would not fit
    roomier = asyncio.run(build_raw_prefix(Context(base_url=UNREACHABLE, raw_history_tokens=2000 + 40, max_retries=0,
                                                   request_timeout_s=2), fake_resources(long_history_dir), "cinephile", "test"))
    assert roomier["context_stats"].n_listed_items > stats.n_listed_items
    short = asyncio.run(build_raw_prefix(ctx, fake_resources(long_history_dir), "newcomer", "full"))
    assert short["context_stats"].n_summarised_events == 0 and not short["flags"]


def test_the_v1_context_switch_is_validated() -> None:
    assert Context().v1_history == "compressed"
    with pytest.raises(ValueError, match="v1_history must be one of compressed, raw"):
        Context(v1_history="everything")
    assert json.dumps(Context(v1_history="raw").v1_history) == '"raw"'
