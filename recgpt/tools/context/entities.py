"""Entity markers of hybrid compression: `⟦title⟧` stands for one soft token (see `recgpt.tools.context.hybrid`).

Kept free of torch so that text-mode code (compression, prompts) can use it at no import cost.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

ENTITY_OPEN, ENTITY_CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧ : stripped from titles, so data cannot fake an entity
ENTITY_PATTERN = re.compile("\u27e6([^\u27e6\u27e7\n]{1,300})\u27e7")


def entity(title: str) -> str:
    """The marker of one entity inside a hybrid prefix."""
    return f"{ENTITY_OPEN}{title}{ENTITY_CLOSE}"


def entity_titles(text: str) -> list[str]:
    return ENTITY_PATTERN.findall(text)


def has_entities(texts: Iterable[str]) -> bool:
    return any(ENTITY_PATTERN.search(t) for t in texts)


def as_text(text: str) -> str:
    """Markers back to the text-mode rendering (quoted titles)."""
    return ENTITY_PATTERN.sub(lambda m: f'"{m.group(1)}"', text)


def message_dicts(messages: Sequence[Any]) -> list[dict[str, str]]:
    """LangChain messages -> chat-template dicts."""
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles.get(m.type, m.type), "content": str(m.content)} for m in messages]
