"""Plug-in agent nodes and the programmatic API, on the fake LLM layer (tests/integration runs them for real)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from examples.shop_plugins import BRAND_SAFETY, GIFT_EXPERT, plugins, without_blocked_words
from recgpt import recommend, stream
from recgpt.errors import InvalidModelOutput
from recgpt.graph import Context, build_graph
from recgpt.graph import plugins as plugin_module
from recgpt.graph.plugins import ExpertPlugin, PluginError, TagFilterPlugin, configured_plugins, load_plugin
from recgpt.schema.state import FinalTag
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, fake_graph

CTX = dict(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")


def run(dataset: Path, plugin_list: list[Any], **ctx: Any) -> dict[str, Any]:
    graph = fake_graph(dataset, plugin_list)
    return asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(dataset), "split": "test"},
                                     context=Context(**{**CTX, **ctx})))


def final(*names: str) -> list[FinalTag]:
    return [FinalTag(tag=n, rationale="", persona_index=0, persona="p", rank=i + 1) for i, n in enumerate(names)]


def test_plugin_expert_runs_beside_the_personas_and_its_tags_reach_the_arbiter(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    out = run(small_dataset_dir, plugins())
    assert sorted(fake_llm.calls) == ["arbiter", "expert[0]", "expert[1]", "expert[2]", "gift_expert", "planner"]
    gift = [t for t in out["tag_pool"] if t.persona == "gift_expert"]
    assert [t.tag for t in gift] == ["gel pens gift_expert", "desk lamp gift_expert", "notebook paper gift_expert",
                                     "office chair gift_expert"]
    assert {t.persona_index for t in gift} == {8}  # after every possible persona index
    assert len(out["tag_pool"]) == 16
    nodes = set(fake_graph(small_dataset_dir, plugins()).get_graph().nodes)
    assert {"gift_expert", "brand_safety"} <= nodes


def test_tag_filter_removes_and_flags_and_reranks(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    no_lamps = TagFilterPlugin(name="no_lamps", rule=lambda tags, state: [t for t in tags if "lamp" not in t.tag])
    out = run(small_dataset_dir, [no_lamps])
    removed = [f for f in out["flags"] if f.startswith("no_lamps_removed")]
    assert removed and all("lamp" in f for f in removed)
    assert all("lamp" not in t.tag for t in out["tags"])
    assert [t.rank for t in out["tags"]] == list(range(1, len(out["tags"]) + 1))
    assert {r.tag.tag for r in out["recommendations"]} == {t.tag for t in out["tags"]}  # retrieval sees the filtered tags
    assert len(out["tags"]) + len(removed) == 5  # every arbiter tag is kept or named as removed


def test_failing_rule_is_flagged_and_fails_open_or_closed(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    def broken(tags: list[FinalTag], state: Any) -> list[FinalTag]:
        raise KeyError("stock service down")

    opened = run(small_dataset_dir, [TagFilterPlugin(name="stock", rule=broken)])
    assert len(opened["tags"]) == 5 and any(f.startswith("stock_failed: KeyError") and "unchanged" in f for f in opened["flags"])
    closed = run(small_dataset_dir, [TagFilterPlugin(name="stock", rule=broken, fail_closed=True)])
    assert closed["tags"] == [] and closed["recommendations"] == []
    assert any("fail_closed" in f for f in closed["flags"])


def test_async_rule_and_a_rule_returning_garbage(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    async def top_two(tags: list[FinalTag], state: Any) -> list[FinalTag]:
        return tags[:2]

    assert len(run(small_dataset_dir, [TagFilterPlugin(name="top_two", rule=top_two)])["tags"]) == 2
    out = run(small_dataset_dir, [TagFilterPlugin(name="garbage", rule=lambda tags, state: ["not a tag"])])
    assert len(out["tags"]) == 5 and any("garbage_failed: TypeError" in f for f in out["flags"])


def test_a_failing_plugin_expert_is_flagged_and_the_personas_still_count(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.fail["gift_expert"] = InvalidModelOutput("gift_expert: schema")
    out = run(small_dataset_dir, [GIFT_EXPERT])
    assert any(f.startswith("gift_expert_failed") for f in out["flags"])
    assert len(out["tag_pool"]) == 12 and len(out["tags"]) == 5
    assert any(c.agent == "gift_expert" and not c.ok for c in out["calls"])  # the failed call is accounted


def test_blocked_words_rule_of_the_example() -> None:
    rule = without_blocked_words(max_tags=2)
    kept = rule(final("kitchen knife set", "gel pens", "desk lamp", "notebook"), {})
    assert [t.tag for t in kept] == ["gel pens", "desk lamp"]
    assert BRAND_SAFETY.kind == "tag_filter" and GIFT_EXPERT.kind == "expert"


def test_invalid_plugins_are_refused_with_a_clear_message() -> None:
    with pytest.raises(PluginError, match="core node"):
        ExpertPlugin(name="arbiter", instructions="x")
    with pytest.raises(PluginError, match="must be 2-40"):
        TagFilterPlugin(name="Bad Name", rule=lambda t, s: t)

    class NoTags(BaseModel):
        ideas: list[str]

    with pytest.raises(PluginError, match="`tags` field"):
        ExpertPlugin(name="ideas", instructions="x", output_schema=NoTags)
    with pytest.raises(PluginError, match="unique"):
        build_graph(plugins=[GIFT_EXPERT, GIFT_EXPERT])  # refused before any resource is resolved
    with pytest.raises(PluginError, match="pkg.module:obj"):
        load_plugin("examples.shop_plugins")
    with pytest.raises(PluginError, match="cannot import"):
        load_plugin("no_such_module_xyz:plugins")
    with pytest.raises(PluginError, match="has no 'nothing'"):
        load_plugin("examples.shop_plugins:nothing")
    with pytest.raises(PluginError, match="not an ExpertPlugin"):
        load_plugin("examples.shop_plugins:BLOCKED_WORDS")


def test_plugins_from_the_environment_and_entry_points(monkeypatch: pytest.MonkeyPatch, small_dataset_dir: Path) -> None:
    from recgpt.settings import get_settings

    monkeypatch.setenv("RECGPT_PLUGINS", "examples.shop_plugins:GIFT_EXPERT, examples.shop_plugins:BRAND_SAFETY")
    get_settings.cache_clear()
    try:
        assert [p.name for p in configured_plugins()] == ["gift_expert", "brand_safety"]
        assert {"gift_expert", "brand_safety"} <= set(fake_graph(small_dataset_dir).get_graph().nodes)  # plugins=None: configured
        assert "gift_expert" not in fake_graph(small_dataset_dir, []).get_graph().nodes  # explicit empty list: none
    finally:
        monkeypatch.delenv("RECGPT_PLUGINS")
        get_settings.cache_clear()
    entry = SimpleNamespace(name="shop", value="examples.shop_plugins:plugins", load=lambda: plugins)
    monkeypatch.setattr(plugin_module, "entry_points", lambda group: [entry] if group == "recgpt.agents" else [])
    assert [p.name for p in configured_plugins([])] == ["gift_expert", "brand_safety"]
    broken = SimpleNamespace(name="broken", value="x:y", load=lambda: (_ for _ in ()).throw(ImportError("gone")))
    monkeypatch.setattr(plugin_module, "entry_points", lambda group: [broken])
    with pytest.raises(PluginError, match="entry point broken .* failed to load: ImportError: gone"):
        configured_plugins([])


def test_sync_api_and_stream_show_every_node(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Context(**CTX)
    graph = fake_graph(small_dataset_dir, plugins())
    state = recommend("u1", str(small_dataset_dir), "test", ctx, graph=graph)
    assert len(state["tags"]) == 5 and state["recommendations"]
    seen = [node for node, _ in stream("u1", str(small_dataset_dir), "test", ctx, graph=graph)]
    assert seen[:2] == ["compress", "planner"]
    assert sorted(seen[2:6]) == ["expert", "expert", "expert", "gift_expert"]
    assert seen[6:] == ["arbiter", "brand_safety", "retrieve", "explained"]
    updates = dict(stream("u1", str(small_dataset_dir), "test", ctx, graph=graph))
    assert updates["planner"]["personas"] and updates["arbiter"]["tags"]


def test_stream_reraises_a_failure_in_the_caller(isolated_home: Path, small_dataset_dir: Path) -> None:
    from recgpt.errors import UnknownUserError

    with pytest.raises(UnknownUserError):
        list(stream("nobody", str(small_dataset_dir), "test", Context(**CTX), graph=fake_graph(small_dataset_dir, [])))


def test_writing_an_agent_page_snippets_define_valid_plugins() -> None:
    import re

    page = Path(__file__).resolve().parents[2] / "docs" / "writing-an-agent.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block.replace(" ...", ""), str(page), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["GIFT_EXPERT"].kind == "expert" and namespace["BRAND_SAFETY"].kind == "tag_filter"
    kept = namespace["no_weapons"](final("kitchen knife set", "gel pens"), {})
    assert [t.tag for t in kept] == ["gel pens"]
