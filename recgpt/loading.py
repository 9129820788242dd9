"""How a string from a setting or a command line becomes an object, in one place each:

- `load_object`: the one `pkg.module:obj` loader (plug-in agents, RECGPT_PLUGINS; plug-in retrievers, RECGPT_RETRIEVER);
- `parse_value`: the one typed-value parser (every `recgpt` option built from a config, `--set FIELD=VALUE`, and
  `python -m recgpt.training.sft CONFIG KEY=VALUE` on a GPU box), so every such value fails the same way."""

from __future__ import annotations

import importlib
import os
import sys
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Union

from recgpt.errors import RecGPTError


def load_object(spec: str, what: str, error: type[RecGPTError] = RecGPTError) -> object:
    """Import `pkg.module:attr[.attr...]` and return the object, or raise `error` with one line naming `what`.

    The working directory is importable first (like uvicorn's --app-dir default), so a plug-in module beside where
    recgpt runs is found."""
    module_name, _, attr = spec.strip().partition(":")
    if not module_name or not attr:
        raise error(f"{what} {spec!r} must look like pkg.module:obj")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the import error printed
        raise error(f"{what} {spec!r}: cannot import {module_name} ({type(exc).__name__}: {reason})") from None
    target: object = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise error(f"{what} {spec!r}: {module_name} has no {attr!r}")
        target = getattr(target, part)
    return target


def optional_of(annotation: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, else (annotation, False)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return inner[0], True
    return annotation, False


def _one_of(choices: Iterable[Any]) -> str:
    choices = [str(c) for c in choices]
    return " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)


def parse_value(raw: str, annotation: Any, option: str) -> Any:
    """`raw` read as `annotation`: a scalar, a `Literal` choice, `X | None` ('none' or nothing is None) or a
    comma-separated `list[...]` of those ('null' is None too) (numbers come back sorted and unique, words unique in the order given)."""
    annotation, optional = optional_of(annotation)
    if optional and raw.strip().lower() in ("", "none", "null"):
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        (item,) = args
        values = [parse_value(part.strip(), item, option) for part in raw.split(",") if part.strip()]
        if not values:
            raise RecGPTError(f"{option} needs at least one value")
        return sorted(set(values)) if item in (int, float) else list(dict.fromkeys(values))
    if origin is Literal:
        if raw not in args:
            raise RecGPTError(f"{option} must be {_one_of(args)} (got {raw!r})")
        return raw
    if annotation is bool:
        if raw.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        raise RecGPTError(f"{option}: {raw!r} is not a valid bool (true or false)")
    if annotation in (int, float):
        try:
            return annotation(raw)
        except ValueError:
            raise RecGPTError(f"{option}: {raw!r} is not a valid {annotation.__name__}") from None
    if annotation in (str, Path):
        return annotation(raw)
    raise TypeError(f"{option}: no parser for {annotation!r}")
