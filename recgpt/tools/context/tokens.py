"""Token counts measured with the served model's tokenizer.

Preferred: vLLM's own `/tokenize` endpoint (exactly the tokenizer that serves the prompt).
Fallback: the tokenizer files of a local model directory (the prepared default model), so that
offline code paths and unit tests still count real tokens. Each counter says which it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import httpx


class TokenCounter(Protocol):
    source: str

    def count(self, text: str) -> int: ...


class ServerTokenCounter:
    """Counts through a vLLM server's /tokenize endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY") -> None:
        root = base_url.rstrip("/")
        self._url = (root[: -len("/v1")] if root.endswith("/v1") else root) + "/tokenize"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.source = f"server:{model}"

    def count(self, text: str) -> int:
        payload = {"model": self._model, "prompt": text, "add_special_tokens": False}
        response = httpx.post(self._url, json=payload, headers=self._headers, timeout=30.0)
        response.raise_for_status()
        return int(response.json()["count"])


class LocalTokenCounter:
    """Counts with the tokenizer files of a Hugging Face model directory."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import (
            AutoTokenizer,  # deferred: transformers takes seconds to import; only `recgpt stats` counts locally
        )

        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.source = f"local:{model_dir.name}"

    def count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


def server_supports_tokenize(base_url: str, model: str) -> bool:
    try:
        ServerTokenCounter(base_url, model).count("ok")
        return True
    except (httpx.HTTPError, KeyError, ValueError):
        return False
