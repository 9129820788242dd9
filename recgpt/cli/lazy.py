"""A typer group whose commands are imported only when one of them is parsed (click's LazyGroup pattern).

`recgpt --help` lists the commands from a table of one-line summaries and imports none of them; `recgpt eval ...`
(its `--help` included) imports the module of `eval` alone. The command modules then import what they need at
their top, without paying for every other command's imports on each start.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    """Where a command lives and the line `recgpt --help` lists for it."""

    target: str  # "pkg.module:attr", attr a typer.Typer holding the command (or being it, with group=True)
    summary: str  # the start of the command's own help (a unit test holds the two together)
    group: bool = False  # the Typer itself is the command (a group such as `train`), not one of its commands

    def load(self, name: str) -> click.Command:
        module, _, attr = self.target.partition(":")
        found = typer.main.get_group(getattr(importlib.import_module(module), attr))
        if self.group:
            return found
        if name not in found.commands:
            raise LookupError(f"{self.target} has no command {name!r}")
        return found.commands[name]


class _Placeholder(click.Command):
    """What the group holds until the command is parsed: its name and summary. Parsing loads the real command,
    whose context (and so its options, help and callback) the group then runs."""

    def __init__(self, name: str, lazy: Lazy) -> None:
        super().__init__(name, help=lazy.summary)
        self.lazy = lazy
        self._loaded: click.Command | None = None

    def real(self) -> click.Command:
        if self._loaded is None:
            self._loaded = self.lazy.load(self.name or "")
        return self._loaded

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        return self.real().make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    """A TyperGroup of lazily imported commands: subclass it with `lazy` set, and pass it as `typer.Typer(cls=...)`."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, lazy in self.lazy.items():
            self.add_command(_Placeholder(name, lazy))
