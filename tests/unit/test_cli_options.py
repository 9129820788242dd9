"""The CLI's option builder and value parser (`recgpt.cli.options`), and how `recgpt recommend` wires its run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Optional

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from recgpt.cli.options import Opt, options_from, parse_pairs, parse_value
from recgpt.errors import RecGPTError


class Sample(BaseModel):
    dataset: str = "office"
    split: Literal["validation", "test"] = "test"
    users: int = Field(default=200, ge=1, description="Users sampled.")
    k_items: list[int] = Field(default_factory=lambda: [10, 30])
    sources: list[str] = Field(default_factory=lambda: ["history"])
    quota: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclasses.dataclass(kw_only=True)
class Knobs:
    num_tags: int = dataclasses.field(default=5, metadata={"description": "N: final tags."})
    mode: str = dataclasses.field(default="meta", metadata={"description": "meta or off."})

    def __post_init__(self) -> None:
        if self.num_tags < 1:
            raise ValueError(f"Knobs.num_tags must be >= 1, got {self.num_tags}")


def _app(seen: dict) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @options_from(Sample, exclude=("extra",), k_items=Opt(help="Item cut-offs."), users=Opt(name="people"))
    @options_from(Knobs, into="knobs", num_tags=Opt(name="tags"), mode=Opt(default="off"))
    def run(*, first: str = typer.Option("a"), config: Sample, knobs: Knobs, last: int = typer.Option(1)) -> None:
        seen.update(config=config, knobs=knobs, first=first, last=last)

    @app.command()
    def other() -> None:  # a second command keeps `run` a sub-command
        pass

    return app


def test_options_come_from_the_fields_with_their_defaults_bounds_and_help() -> None:
    seen: dict = {}
    app = _app(seen)
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    for flag in ("--first", "--dataset", "--split", "--people", "--k-items", "--sources", "--quota", "--tags", "--mode", "--last"):
        assert flag in text, flag
    assert "--extra" not in text and "--users" not in text and "Users sampled." in text and "Item cut-offs. Comma-separated." in text
    assert text.index("--first") < text.index("--dataset") < text.index("--tags") < text.index("--last")  # where the config stands

    assert CliRunner().invoke(app, ["run"]).exit_code == 0
    assert seen["config"] == Sample() and seen["knobs"] == Knobs(mode="off") and (seen["first"], seen["last"]) == ("a", 1)

    result = CliRunner().invoke(app, ["run", "--people", "7", "--k-items", "30,5,30", "--sources", "b,a,b", "--quota", "0.5",
                                      "--split", "validation", "--tags", "2", "--last", "3"])
    assert result.exit_code == 0, result.output
    assert seen["config"] == Sample(users=7, k_items=[5, 30], sources=["b", "a"], quota=0.5, split="validation")
    assert seen["knobs"] == Knobs(num_tags=2, mode="off") and seen["last"] == 3


def test_a_bad_option_value_is_one_line_naming_the_option() -> None:
    app = _app({})
    for args, message in ((["--split", "train"], "--split must be validation or test (got 'train')"),
                          (["--k-items", "10,ten"], "--k-items: 'ten' is not a valid int"),
                          (["--k-items", ","], "--k-items needs at least one value"),
                          (["--tags", "0"], "--tags must be >= 1, got 0")):
        result = CliRunner().invoke(app, ["run", *args])
        assert isinstance(result.exception, RecGPTError) and str(result.exception) == message, (args, result.output)
    result = CliRunner().invoke(app, ["run", "--people", "0"])  # a ge bound is click's own range check
    assert result.exit_code == 2 and "--people" in result.output


def test_a_config_the_cli_cannot_show_is_refused_where_it_is_declared() -> None:
    with pytest.raises(TypeError, match="has no field"):
        options_from(Sample, nope=Opt())
    with pytest.raises(TypeError, match="no command-line form"):
        options_from(Sample)(lambda *, config: None)  # `extra` is a dict


def test_parse_value_reads_every_shape_the_cli_uses() -> None:
    assert parse_value("3,1,3", list[int], "--k") == [1, 3]
    assert parse_value("0.5, 0", list[float], "--betas") == [0.0, 0.5]
    assert parse_value("paper,architecture", list[Literal["architecture", "paper"]], "--setup") == ["paper", "architecture"]
    assert parse_value("none", Optional[float], "--quota") is None and parse_value("0.2", float | None, "--quota") == 0.2
    assert parse_value("yes", bool, "--x") is True and parse_value("off", bool, "--x") is False
    assert parse_value("a/b", Path, "--out") == Path("a/b")
    with pytest.raises(RecGPTError, match="'maybe' is not a valid bool"):
        parse_value("maybe", bool, "--x")
    with pytest.raises(RecGPTError, match="--mode must be one of a, b, c"):
        parse_value("d", Literal["a", "b", "c"], "--mode")


def test_parse_pairs_types_context_overrides_and_checks_them() -> None:
    from recgpt.schema.context import Context

    assert parse_pairs(["num_personas=2", "expert_temperature=0.3", "style_sampling=false", "seed=none"], Context) == {
        "num_personas": 2, "expert_temperature": 0.3, "style_sampling": False, "seed": None}
    with pytest.raises(RecGPTError, match="expected FIELD=VALUE with FIELD one of the Context fields"):
        parse_pairs(["temperature=1"], Context)
    with pytest.raises(RecGPTError, match=r"^--set: Context.num_personas must be >= 1"):
        parse_pairs(["num_personas=0"], Context)


class _Registry:
    def __init__(self) -> None:
        self.prepared: list[tuple] = []

    def dataset(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(user=lambda user: None, name=name)

    def prepare(self, dataset: Any, split: str, show_progress: bool = True) -> None:
        self.prepared.append((dataset, split, show_progress))


def test_recommend_resolves_the_run_once_and_hands_the_resources_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """One `resolve(dataset)`; the registry prepares its dataset for the split; the graph is built on those
    resources, and a durable run gets them too. The Context comes from --personas / --tags-per-expert / --tags."""
    from recgpt.cli import recommend as module
    from recgpt.schema.context import Context

    registry, calls = _Registry(), []
    resources = SimpleNamespace(dataset=SimpleNamespace(name="office"))
    monkeypatch.setattr(module, "check_endpoint", lambda ctx: None)
    monkeypatch.setattr(module, "warn_policy_domain", lambda ctx, dataset: None)
    monkeypatch.setattr(module, "default_registry", lambda: registry)
    monkeypatch.setattr(module, "configured_plugins", lambda specs: [])
    monkeypatch.setattr(module, "result_json", lambda state: "{}")

    def resolve(dataset: str, **kwargs: Any) -> SimpleNamespace:
        calls.append(("resolve", dataset, kwargs))
        return resources

    def build_graph(res: Any, **kwargs: Any) -> str:
        calls.append(("build_graph", res, kwargs))
        return "graph"

    async def arecommend(user: str, dataset: str, split: str, ctx: Context, graph: Any = None, **situation: Any) -> dict:
        calls.append(("arecommend", user, dataset, split, ctx, graph))
        return {}

    async def arecommend_durable(user: str, thread: str, res: Any, split: str, ctx: Context, db: Any, plugins: list,
                                 **situation: Any) -> tuple[dict, str]:
        calls.append(("durable", user, thread, res, split, ctx, plugins))
        return {}, "new"

    for name, fake in (("resolve", resolve), ("build_graph", build_graph), ("arecommend", arecommend),
                       ("arecommend_durable", arecommend_durable)):
        monkeypatch.setattr(module, name, fake)
    result = CliRunner().invoke(module.app, ["recommend", "--user", "u1", "--json", "--personas", "2", "--tags-per-expert", "3",
                                             "--tags", "4", "--explanations", "off"])
    assert result.exit_code == 0, result.output
    ctx = Context(num_personas=2, tags_per_expert=3, num_tags=4, explanation_mode="off")
    assert calls == [("resolve", "office", {"show_progress": False}), ("build_graph", resources, {"plugins": []}),
                     ("arecommend", "u1", "office", "full", ctx, "graph")]
    assert registry.prepared == [(resources.dataset, "full", False)]

    calls.clear()
    result = CliRunner().invoke(module.app, ["recommend", "--user", "u1", "--json", "--thread", "t1", "--split", "test"])
    assert result.exit_code == 0, result.output
    assert calls == [("resolve", "office", {"show_progress": False}), ("durable", "u1", "t1", resources, "test", Context(), [])]
