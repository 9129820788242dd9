"""`Endpoint`: where an agent's requests go and how prompts reach it. Its own module, free of the LLM client's
imports (openai, langchain), so that code which only resolves endpoints (the registry, the CLI) stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from recgpt.tools.context.hybrid import HybridAssembler
else:
    # `recgpt.tools.context.hybrid` imports torch and transformers (seconds); text-mode runs, agents and the CLI never
    # need them, so this module does not import it. At run time the field below is validated as `Any`.
    HybridAssembler = Any


class Endpoint(BaseModel):
    """An OpenAI-compatible endpoint and how prompts reach it: as text, or (`compression="hybrid"`) with entity
    markers sent as prompt embeddings built by `assembler` (see `recgpt.tools.context.hybrid`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str
    model: str
    api_key: str = "EMPTY"
    timeout_s: float = 120.0
    max_retries: int = 2
    compression: Literal["text", "hybrid"] = "text"
    assembler: HybridAssembler | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="after")
    def _assembler_iff_hybrid(self) -> Endpoint:
        if self.compression == "hybrid" and self.assembler is None:
            raise ValueError("a hybrid endpoint needs an assembler (recgpt.tools.context.hybrid.load_assembler)")
        if self.compression == "text" and self.assembler is not None:
            raise ValueError("a text endpoint takes no assembler")
        return self
