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
    if len(words) > 1 and len(last) == 1 and last.isalpha() and last.lower() not in ("a", "i"):
        return True  # a word cut to its first letter ("... assorted colors pack of r.")
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


_WORD = re.compile(r"[a-z][a-z'&-]*")


def words_of(text: str) -> list[str]:
    """The lower-cased words of `text` (letters, with inner apostrophes, ampersands and hyphens)."""
    return _WORD.findall(text.lower())


GENERIC_WORDS = frozenset({
    "item", "items", "product", "products", "fit", "fits", "fitting", "them", "they", "their", "because", "called",
    "named", "it's", "its", "this", "that", "these", "those", "great", "perfect", "choice", "user", "users", "you",
    "your", "need", "needs", "will", "would", "love", "ideal", "option", "good", "best", "the", "and", "for", "with",
    "from", "are", "was", "has", "have", "been", "which", "what", "into", "also", "just", "very", "really", "here",
    "there", "is", "a", "an", "of", "to", "in", "on", "it", "as", "be", "or", "at", "by", "so", "can", "our", "recommend",
    "recommended", "recommendation", "matches", "match", "matching", "like", "such", "thing", "things", "one"})
"""Words that fill a sentence without saying anything about an item or a shopper: what persona foci and explanations
are compared without."""


FILLER_WORDS = frozenset({"x", "inch", "inches", "ft", "mm", "cm", "oz", "ounce", "ounces", "lb", "lbs", "gsm", "ml",
                          "ct", "pk", "pcs", "qty", "count", "dozen"})
"""Size, count and pack residue of product titles once their numbers are gone ("12 x 18 inches, 6 count")."""
PACK_OWNERS = frozenset({"battery", "back", "ice", "fanny", "power", "six", "value", "variety", "combo", "hip"})
"""Words after which "pack" is a product, not a count ("battery pack")."""
SHORT_WORDS = frozenset({"a", "an", "as", "at", "by", "in", "it", "of", "on", "or", "to", "up", "tv", "pc", "cd", "id",
                         "uv", "ac", "dc", "hd", "3d", "2d", "usb", "led", "lcd", "dvd", "ink", "pen", "box", "bag"})
"""Words of one to three letters that are words, not the stub of a cut one ("black and gr")."""
TAG_WORDS = 6
"""A tag a shopper would type is a few words; a longer one is a title with its filler."""


def tidy_tag(tag: str, max_words: int = TAG_WORDS, max_chars: int | None = None) -> str:
    """`tag` without title filler: size and count residue ("x inches", "pack of"), stubs of cut words ("gr", "x-"),
    words it already said, anything past `max_words`, and a dangling last word ("... dividers for"). The words it
    keeps are its own, in its order; '' when nothing is left (the caller falls back to the category's name).

    The shipped policy learnt tags from titles whose numbers were stripped, so "binder index dividers x inches yellow
    and white dividers for" is what it writes; the grounded category, not these words, decides the items."""
    words = tag.split()
    if max_chars is not None and len(tag) >= max_chars - 2 and len(words) > 1:
        words = words[:-1]  # the schema's length bound (less a stripped space or two) cut the last word ("... laminat")
    kept: list[str] = []
    seen: set[str] = set()
    for n, word in enumerate(words):
        low = word.lower().strip(".,;:")
        after = words[n + 1].lower() if n + 1 < len(words) else ""
        if not low or low in FILLER_WORDS or re.fullmatch(r"x\w{0,2}-?|\w*-|&\w+", low):
            continue  # "x", "xmm", "x-", a word cut at its hyphen
        if low in ("pack", "packs") and (not kept or kept[-1].lower() not in PACK_OWNERS):
            continue
        if low == "of" and kept == [] or (low in ("of", "per") and words[n - 1].lower() in ("pack", "packs")) or (
                low == "per" and after in ("pack", "box", "case")):
            continue
        if len(low) <= 3 and low.isalpha() and low not in SHORT_WORDS and low not in DANGLING_WORDS and not (
                len(low) == 3 and low.isalpha() and any(c in "aeiouy" for c in low)):
            continue  # a stub ("gr", "bl") but keep short real words ("pad", "mat", "ink")
        if low in seen and low not in DANGLING_WORDS:
            continue
        seen.add(low)
        kept.append(word.strip(".,;:"))
    kept = kept[:max_words]
    while kept and (kept[-1].lower() in DANGLING_WORDS or kept[-1] in ("&", "-", "/", "+")):
        kept.pop()
    while kept and kept[0].lower() in DANGLING_WORDS:
        kept.pop(0)
    return " ".join(kept)
