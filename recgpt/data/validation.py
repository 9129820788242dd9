"""Turn pydantic validation errors into one line naming file, record and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from recgpt.errors import DataError

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(path: Path | str, record: str, error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "<record>"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{path}: record {record} field {field!r}: {first.get('msg', 'invalid')}{more}"


def build(model: type[M], path: Path | str, record: str, data: Any) -> M:
    """Validate `data` as `model`, or raise DataError naming file, record and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DataError(describe_validation_error(path, record, exc)) from None
