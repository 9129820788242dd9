"""Bounded, English-only text fields for LLM output schemas, enforced by the server's grammar.

vLLM compiles a JSON schema's `pattern` into the decoding grammar (xgrammar), so a pattern is a
hard guarantee rather than a request: measured on Qwen2.5-Coder-0.5B, a prompt that asks for an
answer in Chinese still yields ASCII under these patterns. The length bound sits inside the
regex (`{min,max}`) instead of `maxLength`, so that it holds whatever a grammar backend does when a
string carries both keywords. Pydantic checks the same regex on our side.

Why ASCII: the project's catalogues are English, tags are matched against English item text, and a
small model otherwise drifts into Chinese (seen once in 50 users). A catalogue in another language
needs its own patterns here.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

PRINTABLE_ASCII = r" !#-\[\]-~"
"""Space to tilde (English letters, digits, punctuation) less '"' and backslash, which a JSON string
would have to escape: the pattern then reads the same on the raw JSON text and on the decoded value."""

TAG_CHARS = r"A-Za-z0-9 '&/+.-"
"""A tag is words, not a path: no '>' (category-path separator), ':', ',' or quotes."""


def english_text(max_chars: int, min_chars: int = 1, description: str = "", sentence: bool = False) -> object:
    """A printable-ASCII string of `min_chars`..`max_chars` characters that starts with a letter or digit
    (a small model otherwise opens names with pasted separators such as ', ').

    `sentence=True` also makes it end with '.', '!' or '?': the grammar then forces the model to close its
    sentence within the bound (seen without it: an "explanation" that was the item title and its id).
    """
    if sentence:
        middle = _bounded(f"[{PRINTABLE_ASCII}]", max(min_chars - 2, 0), max_chars - 2)
        body = f"[A-Za-z0-9]{middle}[.!?]"
    else:
        body = f"[A-Za-z0-9]{_bounded(f'[{PRINTABLE_ASCII}]', max(min_chars - 1, 0), max_chars - 1)}"
    pattern = rf"^({body})?$" if min_chars == 0 else rf"^{body}$"
    return Annotated[str, Field(pattern=pattern, description=description)]


MAX_REPEAT = 120
"""xgrammar (vLLM's grammar backend) fails to compile a single `{m,n}` repetition much above 128 (seen: 150
fails, 128 compiles) and the server answers HTTP 500; longer bounds are written as a chain of shorter ones."""


def _bounded(char_class: str, low: int, high: int) -> str:
    """`char_class{low,high}` as a chain of repetitions of at most MAX_REPEAT each (the same language)."""
    parts = []
    while high > 0 or not parts:
        take = min(high, MAX_REPEAT)
        need = min(low, take)
        parts.append(f"{char_class}{{{need},{take}}}")
        low, high = low - need, high - take
    return "".join(parts)


def tag_text(max_chars: int, description: str = "") -> object:
    """A shopper's search phrase: starts with a letter, no category-path separators ('>', ':', ',').

    Measured on validation (Qwen2.5-Coder-0.5B, 31 users, expert alone): a stricter 2-to-6-words pattern
    halved cat HR@5 L2 (.258 -> .129), the model filling the word slots with sentences; so only characters
    and length are constrained.
    """
    return Annotated[str, Field(pattern=rf"^[A-Za-z][{TAG_CHARS}]{{1,{max_chars - 1}}}$", description=description)]


DANGLING_WORDS = frozenset(("a", "an", "the", "and", "or", "but", "nor", "because", "of", "to", "for", "with", "from",
                            "into", "onto", "your", "our", "their", "its", "my", "as", "than", "if"))
"""Words no English sentence ends on. The grammar of a `sentence=True` field makes the model close its text with
'.', '!' or '?' within the bound, and a small model near the bound closes whatever it was writing ("... because
it is the." / "... perfect for It!")."""


def clip_sentence(text: str, limit: int) -> str:
    """Whitespace-normalised `text` that never ends mid-sentence because of a length bound.

    The server cuts a string at the schema's bound wherever the bound falls. A text shorter than
    `limit` was not cut and is kept whole. One that reaches `limit` ends at its last sentence end
    ('.', '!', '?') within the limit; with none in its last two thirds, at the last whole word, closed
    with an ASCII ellipsis (the text stays English-only ASCII) after the last word that can end a clause.
    """
    text = " ".join(text.split())
    if len(text) < limit:
        return text
    head = text[:limit]
    if head.endswith((".", "!", "?")):
        return head
    end = max(head.rfind(mark) for mark in ".!?")
    if end >= limit // 3:
        return head[: end + 1]
    words = head[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:-").split(" ")
    while len(words) > 1 and words[-1].lower() in DANGLING_WORDS:  # "... for the..." reads as a fragment
        words.pop()
    return " ".join(words).rstrip(" ,;:-") + "..."


def sentences_of(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def ends_on_a_fragment(text: str) -> bool:
    """True when the final sentence of `text` was closed mid-clause: its last word is an article, conjunction,
    preposition or possessive, or a capitalised word that does not start the sentence ("... for It!")."""
    sentences = sentences_of(text)
    if not sentences:
        return False
    words = sentences[-1].rstrip(".!?").split()
    if not words:
        return True
    last = words[-1].strip("'\",;:()-")
    return last.lower() in DANGLING_WORDS or (len(words) > 1 and last.lower() in {"it", "this", "that", "you"} and last[:1].isupper())


def drop_fragment(text: str, min_words: int) -> str | None:
    """`text` without a closing fragment: cut back to its last full sentence, or None when fewer than `min_words`
    words would remain (the caller re-samples)."""
    if not ends_on_a_fragment(text):
        return text
    kept = " ".join(sentences_of(text)[:-1])
    return kept if kept and len(kept.split()) >= min_words and not ends_on_a_fragment(kept) else None


def to_english_text(text: str, max_chars: int) -> str:
    """`text` made to fit `english_text(max_chars)`: other characters dropped, whitespace normalised, clipped."""
    kept = "".join(ch for ch in text if " " <= ch <= "~" and ch not in '"\\')
    words = " ".join(kept.split())
    start = next((i for i, ch in enumerate(words) if ch.isalnum()), len(words))
    return words[start:start + max_chars].strip()
