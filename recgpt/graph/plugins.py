"""Plug-in agent nodes: add an agent to the graph without editing the core.

Two extension points, at the two places production recommenders add agents:

- `ExpertPlugin`: an extra expert that always runs beside the planner's persona experts (a gift expert, a
  promotions expert, a new-arrivals expert). It is sent the same shared prefix as every other agent (so the
  server's prefix cache serves it), answers its own instructions with its own output schema, and its tags
  join the Decision Arbiter's pool under its own name. If it fails, the run goes on and says so in `flags`.
- `TagFilterPlugin`: a node between the arbiter and retrieval over the final tags (business rules:
  blocked words, compliance, stock). Every tag it removes is named in `flags`, never dropped silently; kept
  tags are re-ranked. A rule that raises is flagged and, by default, leaves the tags as they were
  (`fail_closed=True` drops them all instead, for rules that must never be bypassed).

Registration, in order of precedence (names must be unique and must not be a core node's name):

1. explicitly: `build_graph(plugins=[...])` (an empty list means: none, whatever is configured);
2. by import path: `RECGPT_PLUGINS="pkg.module:obj,other.module:obj"` or `recgpt recommend --plugin pkg.module:obj`;
3. by an installed package's entry point in the `recgpt.agents` group (`[project.entry-points."recgpt.agents"]`).

`obj` may be a plugin, a list of plugins, or a function of no arguments returning either.
See docs/writing-an-agent.md and examples/shop_plugins.py.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Union

from langgraph.runtime import Runtime
from pydantic import BaseModel

from recgpt.agents.expert import grounded_expert_schema, propose_tags
from recgpt.errors import RecGPTError
from recgpt.graph.core import CORE_NODES
from recgpt.loading import load_object
from recgpt.prompts.expert import GROUNDING_INSTRUCTION
from recgpt.schema.context import Context
from recgpt.schema.state import FinalTag, NodeTiming, RecState
from recgpt.services.resources import Resources
from recgpt.settings import get_settings

ENTRY_POINT_GROUP = "recgpt.agents"
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

TagRule = Callable[[list[FinalTag], RecState], Union[list[FinalTag], Awaitable[list[FinalTag]]]]


class PluginError(RecGPTError):
    """A plug-in could not be loaded or is invalid (the message names it)."""


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise PluginError(f"plug-in name {name!r} must be 2-40 characters of a-z, 0-9 and _, starting with a letter")
    if name in CORE_NODES:
        raise PluginError(f"plug-in name {name!r} is a core node of the graph; choose another")


@dataclass(frozen=True)
class ExpertPlugin:
    """An expert that always runs beside the persona experts.

    `instructions` follow the shared context, like every agent's; `{m}` in them is replaced by the Context's
    tags-per-expert. `output_schema` (default: the persona experts' schema for M tags) must have a `tags` list
    whose items carry `tag` and optionally `rationale`.
    """

    name: str
    instructions: str
    output_schema: type[BaseModel] | None = None
    temperature: float = 0.8
    kind: str = field(default="expert", init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.output_schema is not None and "tags" not in self.output_schema.model_fields:
            raise PluginError(f"expert plug-in {self.name!r}: its output schema needs a `tags` field")

    def node(self, persona_index: int, resources: Resources) -> Callable[[dict[str, Any], Runtime[Context]], Awaitable[dict[str, Any]]]:
        async def plugin_expert(task: dict[str, Any], runtime: Runtime[Context]) -> dict[str, Any]:
            ctx = runtime.context
            # grounded like the persona experts, unless the plug-in brings its own schema (then its tags are free text,
            # or carry `category` labels of the run's vocabulary if the schema has that field)
            vocabulary = resources.vocabulary(ctx.grounding, ctx.grounding_labels)
            schema = self.output_schema or grounded_expert_schema(ctx.tags_per_expert, vocabulary)
            instructions = self.instructions.replace("{m}", str(ctx.tags_per_expert))
            if vocabulary is not None and self.output_schema is None:
                instructions += "\n" + GROUNDING_INSTRUCTION
            return await propose_tags(task["shared_prefix"], instructions, schema, self.name, persona_index, self.name,
                                      ctx, self.temperature, 1 + persona_index, await resources.aendpoints(ctx), vocabulary)

        plugin_expert.__name__ = self.name
        return plugin_expert


@dataclass(frozen=True)
class TagFilterPlugin:
    """A post-arbiter rule over the final tags: `rule(tags, state)` returns the tags to keep (sync or async)."""

    name: str
    rule: TagRule
    fail_closed: bool = False
    kind: str = field(default="tag_filter", init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not callable(self.rule):
            raise PluginError(f"tag-filter plug-in {self.name!r}: `rule` must be callable")

    def node(self) -> Callable[[RecState], Awaitable[dict[str, Any]]]:
        async def tag_filter(state: RecState) -> dict[str, Any]:
            started = time.perf_counter()
            tags = list(state.get("tags", []))
            timing = lambda: [NodeTiming(node=self.name, seconds=time.perf_counter() - started)]  # noqa: E731
            try:
                kept = self.rule(tags, state)
                if inspect.isawaitable(kept):
                    kept = await kept
                kept = list(kept)
                if not all(isinstance(t, FinalTag) for t in kept):
                    raise TypeError("the rule must return FinalTag objects")
            except Exception as exc:  # a user's rule: any failure is flagged, the run goes on
                verdict = "dropped every tag (fail_closed)" if self.fail_closed else "kept the tags unchanged"
                return {"tags": [] if self.fail_closed else tags, "timings": timing(),
                        "flags": [f"{self.name}_failed: {type(exc).__name__}: {exc}; {verdict}"]}
            kept_names = {t.tag for t in kept}
            flags = [f"{self.name}_removed: {t.tag!r}" for t in tags if t.tag not in kept_names]
            reranked = [t.model_copy(update={"rank": i + 1}) for i, t in enumerate(kept)]
            return {"tags": reranked, "flags": flags, "timings": timing()}

        tag_filter.__name__ = self.name
        return tag_filter


Plugin = Union[ExpertPlugin, TagFilterPlugin]


def _as_plugins(obj: Any, origin: str) -> list[Plugin]:
    if callable(obj) and not isinstance(obj, (ExpertPlugin, TagFilterPlugin)):
        try:
            obj = obj()
        except Exception as exc:
            raise PluginError(f"plug-in factory {origin} failed: {type(exc).__name__}: {exc}") from None
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if not isinstance(item, (ExpertPlugin, TagFilterPlugin)):
            raise PluginError(f"{origin} is not an ExpertPlugin or TagFilterPlugin (got {type(item).__name__})")
    return items


def load_plugin(spec: str) -> list[Plugin]:
    """Resolve "pkg.module:obj" to the plug-ins it names (through the one loader, `recgpt.loading.load_object`)."""
    return _as_plugins(load_object(spec, "plug-in", PluginError), spec)


def configured_plugins(specs: Sequence[str] | None = None) -> list[Plugin]:
    """Plug-ins from import paths (default: RECGPT_PLUGINS) and from the `recgpt.agents` entry points."""
    specs = list(get_settings().plugins if specs is None else specs)
    plugins: list[Plugin] = []
    for spec in specs:
        plugins += load_plugin(spec)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugins += _as_plugins(ep.load(), f"entry point {ep.name} ({ep.value})")
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"entry point {ep.name} ({ep.value}) failed to load: {type(exc).__name__}: {exc}") from None
    return validate(plugins)


def validate(plugins: Sequence[Plugin]) -> list[Plugin]:
    names = [p.name for p in plugins]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PluginError(f"plug-in names must be unique; repeated: {', '.join(duplicates)}")
    return list(plugins)
