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
    dataset: str = Field(default="office", description=(
        "The dataset a run resolves when none is named (`office`, `movielens` or a folder of items.jsonl + "
        "histories.jsonl): what Studio's graph and `build_graph()` serve."))
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

    chroma_url: str = Field(
        default="",
        description=("A Chroma server (http://host:port) holding the catalogue index, instead of the embedded one under "
                     "home/chroma: what many batch workers share (`recgpt index serve` starts one). The first process to "
                     "find the index missing builds it; the build is idempotent (upserts keyed by item id), so two "
                     "builders racing write the same index."),
    )
    retriever: str = Field(
        default="collaborative",
        description=("Retrieval backend: `collaborative` (the default: the tag's semantic similarity mixed with SASRec's "
                     "next-item score for the user; Chroma index under home/chroma, model under home/collab), `chroma` "
                     "(semantic similarity alone, the same items for every user) or a `pkg.module:callable` taking a "
                     "Dataset and returning a Retriever (see recgpt.tools.retrieval). Collaborative is the default because "
                     "it measured better on Office validation (reports/retrieval-office-validation.md: history-category "
                     "tags item HR@10 .150 against Chroma's .020)."),
    )
    retrieval_beta: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description=("`collaborative` retriever: weight of the semantic term (1 = semantic order among the candidates, "
                     "0 = SASRec's order: the tag then only chooses the candidates). 0 and depth 200 are the best item "
                     "HR@10 of history-category tags on Office validation (`recgpt eval-retrieval`); a perfect tag (the "
                     "target's own category) did best at 0.3 and depth 30 there (.740 against .420)."),
    )
    retrieval_depth: int = Field(
        default=200, ge=1,
        description=("`collaborative` retriever: candidates per tag from each source (semantic neighbours, items of the "
                     "tag's nearest category) before the mix re-ranks them; tuned with the beta."),
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
    def collab_dir(self) -> Path:
        """Trained collaborative (SASRec) models, one file per dataset content, split and hyper-parameters."""
        return self.home / "collab"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
