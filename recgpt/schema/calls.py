"""Accounting of one agent call, stored in graph state and written by the LLM client."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LLMCall(BaseModel):
    """Accounting for one agent call (all its attempts), stored in graph state."""

    agent: str
    ok: bool
    attempts: int
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None
    started_at: float = Field(default=0.0, description="Wall clock (epoch s) when the call began; with latency_s, its interval.")
