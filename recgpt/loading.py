"""The one `pkg.module:obj` loader: plug-in agents (RECGPT_PLUGINS), plug-in retrievers (RECGPT_RETRIEVER) and
anything else named by import path resolve through `load_object`, so every such setting fails the same way."""

from __future__ import annotations

import importlib
import os
import sys

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
