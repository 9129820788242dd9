"""Process-wide settings (paths, endpoint) read from the environment with the RECGPT_ prefix.

Per-run knobs of the agent graph (K personas, M tags, N final tags, temperatures) live in
`recgpt.schema.context.Context`, the graph's runtime context, not here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    """`../shared/data` beside the checkout when it exists, else a folder under RECGPT_HOME."""
    shared = _REPO_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "recgpt" / "data"


class Settings(BaseSettings):
    """Environment-driven settings. Every field can be set as `RECGPT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="RECGPT_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "recgpt",
        description="Cache dir: converted model, Chroma index, server pid/log files.",
    )
    data_dir: Path = Field(default_factory=_default_data_dir, description="Folder holding the datasets.")
    base_url: str = Field(
        default="http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint (vLLM or any other)."
    )
    model: str = Field(
        default="",
        description="Served model name; empty means: the one recgpt serves (the prepared default model).",
    )
    api_key: str = Field(default="EMPTY", description="API key for the endpoint (vLLM ignores it).")
    request_timeout_s: float = Field(default=300.0, description=(
        "Per-request timeout of LLM calls. Generous: on a 2-core CPU server a 350-token expert answer among 16 "
        "concurrent requests legitimately takes 1-2 minutes (mean 58 s measured)."))
    max_retries: int = Field(
        default=2, description="Transport retries (connect errors, 429, 5xx) done by the openai client."
    )
    max_inflight_requests: int = Field(
        default=16, ge=1,
        description=("LLM requests in flight per endpoint and process; more wait in line. vLLM admits every request "
                     "at once, so without a bound a large batch makes every request slow enough to time out."),
    )

    retriever: str = Field(
        default="chroma",
        description=("Retrieval backend: `chroma` (persistent index under home/chroma) or a `pkg.module:callable` "
                     "taking a Dataset and returning a Retriever (see recgpt.tools.retrieval)."),
    )
    plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Plug-in agent nodes as comma-separated `pkg.module:obj` import paths (see recgpt.graph.plugins).",
    )

    @field_validator("plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def index_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
