"""Which retrieval backend a setting names: `chroma`, `collaborative` (the default) or a plug-in `pkg.module:callable`.

Only the naming lives here. The built-in backends are built (and kept, one per dataset) by a `Registry`
(`recgpt.services.resources`), which owns the Chroma clients, the SASRec models and the embedder they share; a
plug-in's callable is imported now and checked each time it makes a retriever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from recgpt.data.dataset import Dataset
from recgpt.errors import RecGPTError
from recgpt.loading import load_object
from recgpt.tools.retrieval.protocol import Retriever, RetrieverFactory

CHROMA = "chroma"
COLLABORATIVE = "collaborative"
BUILTIN = (CHROMA, COLLABORATIVE)


def plugin_factory(spec: str) -> RetrieverFactory:
    """A plug-in retriever: `pkg.module:callable` taking a `Dataset` and returning a `Retriever` (a class bound to a
    dataset qualifies). Imported now, so a bad setting fails before any LLM call is spent."""
    target = load_object(spec, "retriever")
    if not callable(target):
        raise RecGPTError(f"retriever {spec!r}: it is a {type(target).__name__}, not a callable taking a Dataset")
    make = cast(Callable[[Dataset], object], target)

    def checked(dataset: Dataset) -> Retriever:
        retriever = make(dataset)
        if not isinstance(retriever, Retriever):
            raise RecGPTError(f"retriever {spec!r} returned a {type(retriever).__name__!r}, not a Retriever "
                              "(needs search_items and nearest_categories)")
        return retriever

    return checked


def check_spec(spec: str) -> str:
    """`spec` stripped, or one line saying what a retriever setting must look like."""
    spec = spec.strip()
    if spec not in BUILTIN and ":" not in spec:
        raise RecGPTError(f"retriever {spec!r} must be {CHROMA!r}, {COLLABORATIVE!r} or look like pkg.module:callable "
                          "(RECGPT_RETRIEVER)")
    return spec
