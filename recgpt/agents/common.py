"""Helpers every LLM agent shares: endpoint resolution and message layout."""

from __future__ import annotations

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage


def messages(shared_prefix: str, instructions: str) -> list[BaseMessage]:
    """Shared context first (cacheable prefix), role instructions last."""
    return [SystemMessage(content=shared_prefix), HumanMessage(content=instructions)]


def clean_text(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit].strip()
