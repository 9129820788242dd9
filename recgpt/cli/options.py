"""The CLI's one option builder and one option-value parser.

A command that runs a config takes one option per field of it: `options_from(EvalConfig)` gives `recgpt eval` its
`--users`, `--split`, `--k-items`, ... with the field's type, default, bounds and description, as
`recgpt train` does for its dataclasses (`recgpt.training.cli.options_from`). Configs are pydantic models
(`recgpt/eval/*`) or dataclasses (the runtime `Context`); the model stays the one place an option is declared,
and `Opt` says only how an option differs from its field (another name, another default, a note).

Every option value that is more than a scalar is read by `parse_value`, against the field's type: comma-separated
lists (`--k-items 10,30`), choices (`--split`), `FIELD=VALUE` overrides (`--set expert_temperature=0.3`, through
`parse_pairs`). A bad value is one line naming the option (a `RecGPTError`), never a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Optional

import annotated_types
import typer
from pydantic import BaseModel, ValidationError

from recgpt.errors import RecGPTError
from recgpt.loading import optional_of, parse_value

_FIELD: Any = object()
_SCALARS = (bool, int, float, str, Path)


@dataclasses.dataclass(frozen=True)
class Opt:
    """How a field's option differs from the field; everything else comes from the field."""

    name: str | None = None  # the option as a Python name: `k_tags` named `tags` is --tags
    default: Any = _FIELD  # the command line's own default; None: optional, the field's default then applies
    help: str = ""  # added after the field's description (the whole help where the model has none)


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    annotation: Any
    description: str
    default: Callable[[], Any]  # called only for the fields a command shows
    bounds: dict[str, float]  # typer's min/max, from the field's ge/le


def _fields(config: type) -> dict[str, _Field]:
    """The fields of a pydantic model or a dataclass, in declaration order."""
    if isinstance(config, type) and issubclass(config, BaseModel):
        found = {}
        for name, info in config.model_fields.items():
            bounds = {key: getattr(m, attr) for m in info.metadata for key, kind, attr in
                      (("min", annotated_types.Ge, "ge"), ("max", annotated_types.Le, "le")) if isinstance(m, kind)}
            default = (lambda: ...) if info.is_required() else functools.partial(info.get_default, call_default_factory=True)
            found[name] = _Field(name, info.annotation, info.description or "", default, bounds)
        return found
    if dataclasses.is_dataclass(config):
        hints = typing.get_type_hints(config)

        def default_of(f: dataclasses.Field) -> Callable[[], Any]:
            if f.default is not dataclasses.MISSING:
                return lambda: f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory
            return lambda: ...

        return {f.name: _Field(f.name, hints[f.name], f.metadata.get("help") or f.metadata.get("description", ""),
                               default_of(f), {}) for f in dataclasses.fields(config)}
    raise TypeError(f"{config!r} is neither a pydantic model nor a dataclass")


def parse_pairs(pairs: Iterable[str], config: type, option: str = "--set") -> dict[str, Any]:
    """`FIELD=VALUE` pairs as typed overrides of `config`'s fields, checked by building `config` from them."""
    fields = _fields(config)
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise RecGPTError(f"{option} {pair!r}: expected FIELD=VALUE with FIELD one of the {config.__name__} fields "
                              f"({', '.join(fields)})")
        out[name] = parse_value(raw, fields[name].annotation, f"{option} {name}")
    build(config, out, {}, option=option)
    return out


def build(config: type, values: dict[str, Any], flags: dict[str, str], option: str = "") -> Any:
    """`config(**values)`; what it refuses is one line naming the option (`flags`: field -> --flag)."""
    try:
        return config(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        raise RecGPTError(f"{flags.get(field, option or field)}: {error['msg']}") from None
    except (TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        for field, flag in flags.items():  # "Context.num_personas must be >= 1" -> "--personas must be >= 1"
            message = message.replace(f"{config.__name__}.{field} ", f"{flag} ")
        raise RecGPTError(f"{option}: {message}" if option else message) from None


def _cli_type(annotation: Any) -> Any:
    """What typer reads the option as: the scalar itself, or text that `parse_value` reads (lists, choices)."""
    inner, _ = optional_of(annotation)
    if inner in _SCALARS:
        return inner
    origin = typing.get_origin(inner)
    if origin is Literal or (origin is list and _cli_type(typing.get_args(inner)[0]) in _SCALARS):
        return str
    raise TypeError(f"no command-line form for {annotation!r}")


def _shown(value: Any) -> Any:
    """A default as the command line writes it (lists comma-separated)."""
    return ",".join(str(v) for v in value) if isinstance(value, list) else value


def options_from(config: type, *, into: str = "config", only: Iterable[str] | None = None, exclude: Iterable[str] = (),
                 **opts: Opt) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command takes one typer option per field of `config` (those in `only`, else all but
    `exclude`) and is called with the config built from them as its parameter `into`, where the options stand in
    `--help`. Its other parameters stay its own options; decorators stack (one per config). An option carries its
    field's type, default, ge/le bounds and description; a list is comma-separated, a `Literal` is checked against
    its choices; a value the config refuses is one line naming the option."""
    fields = _fields(config)
    chosen = list(only) if only is not None else [name for name in fields if name not in set(exclude)]
    if unknown := (set(chosen) | set(opts)) - set(fields):
        raise TypeError(f"{config.__name__} has no field {sorted(unknown)}")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        params, field_of, flags = [], {}, {}
        for name in chosen:
            field, opt = fields[name], opts.get(name, Opt())
            default = field.default() if opt.default is _FIELD else opt.default
            option = opt.name or name
            field_of[option] = field
            flags[name] = "--" + option.replace("_", "-")
            kind = _cli_type(field.annotation)
            bounds = field.bounds if kind in (int, float) else {}
            listed = "Comma-separated." if typing.get_origin(optional_of(field.annotation)[0]) is list else ""
            params.append(inspect.Parameter(
                option, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind] if default is None else kind,
                default=typer.Option(_shown(default), help=" ".join(t for t in (field.description, opt.help, listed) if t),
                                     **bounds)))
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inspect.signature(command).parameters.values()]
        at = [p.name for p in own].index(into)  # the config's options stand where the command takes the config
        signature = own[:at] + params + own[at + 1:]

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            given = {}
            for option, field in field_of.items():
                value = values.pop(option)
                if isinstance(value, str) and _cli_type(field.annotation) is str and field.annotation is not str:
                    value = parse_value(value, field.annotation, flags[field.name])
                if value is not None:  # None: an option left out whose field keeps its own default
                    given[field.name] = value
            return command(**{into: build(config, given, flags)}, **values)

        run.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
        # typer reads the type hints too (string annotations of the command's own options resolve in its module)
        run.__annotations__ = {p.name: p.annotation for p in signature}
        return run

    return decorate


CONTEXT_KNOBS: dict[str, Opt] = {
    "num_personas": Opt(name="personas"),
    "tags_per_expert": Opt(name="tags_per_expert"),
    "num_tags": Opt(name="tags"),
    "explanation_mode": Opt(name="explanations"),
    "judge_mode": Opt(name="judge"),
}
"""The runtime Context's options of a run of the graph (`recgpt recommend`, `recgpt load`): --personas (K),
--tags-per-expert (M), --tags (N), --explanations, --judge."""

DATASET = Opt(help="office, movielens, or a JSONL dataset folder.")
REPORTS = typer.Option(Path("reports"), help="Report folder.")
