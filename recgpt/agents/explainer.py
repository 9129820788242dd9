"""Explanation agents: the Style Planner (meta-prompting stage 1) and the Explanation Writer (stage 2).

In 'template' mode (RecGPT-V1) the writer gets one fixed guideline for every user, item and
situation; in 'meta' mode it gets the guideline the Style Planner wrote for this user and item.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, field_validator

from recgpt.agents.common import AgentCall, clean_text, messages
from recgpt.data import Dataset
from recgpt.prompts.explainer import (
    FALLBACK_SENTENCE,
    FALLBACK_WITH_PAST,
    FALLBACK_WITH_PAST_SHORT,
    GUIDELINE_WORDS,
    ITEM_BLOCK,
    RHETORICAL_DEVICES,
    SAMPLED_STYLE_INSTRUCTIONS,
    STYLE_INSTRUCTIONS,
    TEMPLATE_GUIDELINE,
    TONES,
    WRITER_INSTRUCTIONS,
    WRITER_RETRY,
)
from recgpt.schema.context import Context
from recgpt.schema.state import ItemExplanation, PlannedStyle, StyleGuideline
from recgpt.schema.subgraphs import ExplainInput, ExplainState
from recgpt.services.resources import Resources
from recgpt.text_fields import (
    DANGLING_WORDS,
    FILLER_WORDS,
    GENERIC_WORDS,
    clip_sentence,
    drop_fragment,
    english_text,
    to_english_text,
    words_of,
)

EXPLANATION_CHARS = 240
"""30 words fit; a longer answer is cut by the server at this bound, then clipped back to its last whole sentence."""


MIN_EXPLANATION_WORDS = 8
MAX_EXPLANATION_WORDS = 40


class ExplanationOutput(BaseModel):
    explanation: english_text(EXPLANATION_CHARS, min_chars=20, sentence=True,
                                           description="One sentence, 8 to 30 words.")  # type: ignore[valid-type]

    @field_validator("explanation")
    @classmethod
    def _a_sentence_not_a_title(cls, text: str) -> str:
        # Not expressible in the server's JSON schema. Too short is re-sampled like a schema error (a title is
        # not an explanation); too long is clipped back to its last sentence within the bound, not thrown away.
        # A closing fragment ("... perfect for It!") is cut back to the last full sentence, or re-sampled.
        words = text.split()
        if len(words) < MIN_EXPLANATION_WORDS:
            raise ValueError(f"an explanation has at least {MIN_EXPLANATION_WORDS} words, got {len(words)}")
        if len(words) > MAX_EXPLANATION_WORDS:
            head = " ".join(words[:MAX_EXPLANATION_WORDS])
            text = clip_sentence(head, len(head))
        if echo := echoed_prompt_words(text):
            raise ValueError(f"an explanation speaks of the item, not of its instructions ({echo!r})")
        if loop := repeated_phrase(text):
            raise ValueError(f"an explanation says each thing once, not in a loop ({loop!r})")
        if has_size_residue(text):
            raise ValueError("an explanation is a sentence, not a title's size residue (a lone 'x')")
        if claim := invented_commerce_claim(text, ""):  # no record here has a price, a delivery or a warranty
            raise ValueError(f"an explanation states only what the item's record gives, not a price or warranty ({claim!r})")
        whole = drop_fragment(text, MIN_EXPLANATION_WORDS)
        if whole is None:
            raise ValueError(f"an explanation ends with a full sentence, not a fragment: {text[-40:]!r}")
        return whole


COMMERCE_CLAIM = re.compile(
    r"\$\s?\d|\b\d+(\.\d+)?\s?(dollars?|usd|euros?|%\s?off)\b|\b(free|next-day|same-day|fast|express)\s+(shipping|delivery)\b"
    r"|\b(lifetime|money-back|\d+-year)\s+(warranty|guarantee)\b|\bwarranty\b|\b(discount|coupon code|on sale|best price)\b",
    re.IGNORECASE)
"""Claims about price, shipping, warranty or discounts: no catalogue record here states them, so a sentence that does
invented them (unless the item's own title says so)."""


def invented_commerce_claim(text: str, title: str) -> str | None:
    """The price, shipping, warranty or discount claim the explanation makes and its item's title does not."""
    match = COMMERCE_CLAIM.search(text)
    if match is None or match.group(0).lower() in title.lower():
        return None
    return match.group(0)


def has_size_residue(text: str) -> bool:
    """A lone "x" with no number beside it: a title's size ("12 x 18 inches") with its numbers gone, as the policy
    learnt to write ("... for Epson X- series printer x touch and x series ...")."""
    tokens = text.lower().replace(",", " ").split()
    return any(t.strip(".!?;:") == "x" and not (n > 0 and any(c.isdigit() for c in tokens[n - 1]))
               and not (n + 1 < len(tokens) and any(c.isdigit() for c in tokens[n + 1]))
               for n, t in enumerate(tokens))


def repeated_phrase(text: str) -> str | None:
    """A word said four times or more, or two words said together three times or more ("coupon coupon coupon ...",
    "sharp edges with sharp edges with ..."): a decoding loop, not a sentence. Short function words do not count."""
    words = words_of(text)
    content = [w for w in words if len(w) > 3]
    counts = Counter(content)
    if counts and (top := counts.most_common(1)[0])[1] >= 4:
        return top[0]
    pairs = Counter(zip(words, words[1:]))
    return next((" ".join(p) for p, n in pairs.items() if n >= 3 and any(len(w) > 3 for w in p)), None)


def echoed_prompt_words(text: str) -> str | None:
    """The first of the prompts' own words (`GUIDELINE_WORDS`) that `text` uses, as whole words; None if none."""
    lowered = " " + " ".join(re.findall(r"[a-z][a-z'&-]*", text.lower())) + " "
    return next((w for w in GUIDELINE_WORDS if f" {w} " in lowered), None)


TITLE_COPY_NEW_WORDS = 5
"""An explanation that adds fewer words than this to the item's title is the title restated, not a reason."""


def restates_title(text: str, title: str) -> bool:
    """True when `text` is the item title (maybe with its id or a few words) rather than an explanation."""
    def words(value: str) -> list[str]:
        return [w.strip(".,!?()[]'").lower() for w in value.split() if w.strip(".,!?()[]'")]
    title_words = set(words(title))
    return len(title_words) >= 3 and sum(w not in title_words and not w.isdigit() for w in words(text)) < TITLE_COPY_NEW_WORDS


MIN_NEW_WORDS = 2
"""An explanation must add at least this many content words beyond the item's title and category."""


def adds_nothing(text: str, title: str, category: str) -> bool:
    """True when `text` says nothing the title and category do not ("The item fits them because it's called a desktop
    label printer."): fewer than `MIN_NEW_WORDS` distinct words of its own beyond them and generic filler."""
    given = set(words_of(f"{title} {category}"))
    new = {w for w in words_of(text) if w not in given and w not in GENERIC_WORDS and len(w) > 2}
    return len(new) < MIN_NEW_WORDS


def says_nothing(text: str, title: str, category: str) -> bool:
    return adds_nothing(text, title, category) or restates_title(text, title)


def short_title(title: str, max_words: int = 8) -> str:
    """The title up to its first comma, parenthesis or dash, at most `max_words` words, never ending on a dangling
    word or a size ("Canon PIXMA MX922 Wireless Color Photo Printer with" loses its "with", "Paper - 8 1/2'' x" its
    size): "Sharpie Permanent Markers"."""
    head = re.split(r"[,(]| - ", clean_text(title, 200), maxsplit=1)[0].strip(" -")
    words = head.split()[:max_words]
    while words and (words[-1].lower() in DANGLING_WORDS or words[-1].lower() in FILLER_WORDS
                     or not any(c.isalpha() for c in words[-1]) or len(words[-1]) == 1):
        words.pop()
    return " ".join(words) or clean_text(title, 60)


def fallback_sentence(tag: str, title: str, category: str = "", past: tuple[str, str] | None = None) -> str:
    """The code-made sentence: the interest named by the item's own category (clean words, where the tag may still
    carry title filler), else the tag; the title up to its first comma. Given `past` (a past item's title and the
    category it shares with this one, `past_item_like`), the sentence names it as the reason."""
    interest = category.rsplit(" > ", 1)[-1].strip().lower() or tag.strip().lower() or "this kind of item"
    mine = short_title(title).rstrip(" .!?:;")
    if past is not None:
        before = short_title(past[0]).rstrip(" .!?:;")
        if before and before.lower() != mine.lower():
            text = FALLBACK_WITH_PAST.format(past=before, title=mine, interest=past[1].strip().lower())
            if repeated_phrase(text):  # both titles already name the shelf ("... Shipping Labels ... shipping labels")
                text = FALLBACK_WITH_PAST_SHORT.format(past=before, title=mine)
            return to_english_text(text, EXPLANATION_CHARS)
    # printable ASCII like every LLM-written field ("DigiOrange® Labels" loses its sign)
    return to_english_text(FALLBACK_SENTENCE.format(tag=interest, title=mine), EXPLANATION_CHARS)


def past_item_like(dataset: Dataset, history_item_ids: Sequence[str], category: str) -> tuple[str, str] | None:
    """The user's latest past item in `category` (the explained item's leaf), else under its second level: (its
    title, the shared level's name); None when the history holds neither (a new interest)."""
    parts = [p for p in category.split(" > ") if p]
    for depth in sorted({len(parts), min(2, len(parts))}, reverse=True):
        if depth < 1:
            continue
        shelf = " > ".join(parts[:depth])
        for item_id in reversed(history_item_ids):
            item = dataset.items.get(item_id)
            if item is not None and (item.category == shelf or item.category.startswith(shelf + " > ")):
                return item.title, parts[depth - 1]
    return None


def grounded_explanation(task: ExplainInput, dataset: Dataset) -> ItemExplanation:
    """`Context.explanation_mode='grounded'`: no LLM call; the sentence names the user's latest past item of the same
    shelf as the reason ('Because you picked ..., you may like ..., also in ...'), else the interest the item answers.
    True by construction. Chosen for the default 0.5B policy, whose own sentences a reader mostly would not accept
    (2 of 30 read by hand, 5 leniently: reports/explanation-read-office-validation.md; a reworded instruction,
    exemplars and the base weights did no better)."""
    item = task["item"]
    past = past_item_like(dataset, task.get("history_item_ids", []), item.category)
    return ItemExplanation(item_id=item.item_id, title=item.title, category=item.category, tag=task["tag"].tag,
                           mode="grounded", text=fallback_sentence(task["tag"].tag, item.title, item.category, past))


def item_block(task: ExplainInput) -> str:
    item = task["item"]
    return ITEM_BLOCK.format(title=clean_text(item.title, 200), category=item.category, tag=task["tag"].tag)


def sampled_style(shared_prefix: str, item_id: str) -> dict[str, str]:
    """Tone and rhetorical device drawn for this user context and item: a seeded draw, so a rerun gives the same style
    and two users of one item (almost always) get different ones.

    Why: asked for all five fields, SmolLM2-135M wrote nearly the same guideline for everyone and meta-prompting came
    out *less* diverse than the fixed V1 template (.769 against .861). On the 0.5B SFT policy the draw is neutral on
    diversity (reports/explain-diversity-office-validation.md: -.001 ± .029 against the planner writing all five); it
    stays because the planner then answers 3 fields instead of 5, and the spread no longer rests on the model."""
    digest = hashlib.sha256(f"{shared_prefix}\x00{item_id}".encode()).digest()
    return {"tone": TONES[digest[0] % len(TONES)], "rhetorical_device": RHETORICAL_DEVICES[digest[1] % len(RHETORICAL_DEVICES)]}


async def style_node(state: ExplainState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """Stage 1: a style guideline for this user, item and situation."""
    ctx = runtime.context
    run = AgentCall("style", ctx, await resources.aendpoints(ctx))
    name = f"style[{state['item'].item_id}]"
    if ctx.style_sampling:
        drawn = sampled_style(state["shared_prefix"], state["item"].item_id)
        prompt = messages(state["shared_prefix"], SAMPLED_STYLE_INSTRUCTIONS.format(
            item_block=item_block(state), situation=state["situation"], **drawn))
        planned = await run.ask(name, prompt, PlannedStyle, ctx.style_temperature, 80)
        guideline = StyleGuideline(**drawn, **planned.model_dump()) if planned is not None else None
    else:
        prompt = messages(state["shared_prefix"], STYLE_INSTRUCTIONS.format(item_block=item_block(state), situation=state["situation"]))
        guideline = await run.ask(name, prompt, StyleGuideline, ctx.style_temperature, 120)
    if guideline is None:  # the writer still runs, on the template guideline; the explanation is flagged
        return run.update(guideline=None, style_error=str(run.error))
    return run.update(guideline=guideline)


async def write_node(state: ExplainState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """Stage 2: the explanation, conditioned on the guideline (or the V1 template); in grounded mode made by code."""
    ctx = runtime.context
    if ctx.explanation_mode == "grounded":
        return {"explanations": [grounded_explanation(state, resources.dataset)]}
    run = AgentCall("explain", ctx, await resources.aendpoints(ctx))
    mode = "template" if ctx.explanation_mode == "template" else "meta"
    guideline = state.get("guideline")
    style = guideline.model_dump() if guideline is not None else TEMPLATE_GUIDELINE
    prompt = messages(state["shared_prefix"], WRITER_INSTRUCTIONS.format(item_block=item_block(state), **style))
    item = state["item"]
    base = dict(item_id=item.item_id, title=item.title, category=item.category, tag=state["tag"].tag, mode=mode, guideline=guideline)
    output = await run.ask(f"explain[{item.item_id}]", prompt, ExplanationOutput, ctx.explanation_temperature, 100,
                          attempts=ctx.explanation_attempts)
    first = clip_sentence(output.explanation, EXPLANATION_CHARS) if output is not None else None
    text = first
    if first is not None and says_nothing(first, item.title, item.category):
        # One more try, told what was wrong.
        again = messages(state["shared_prefix"], WRITER_INSTRUCTIONS.format(item_block=item_block(state), **style)
                         + WRITER_RETRY.format(previous=clean_text(first, EXPLANATION_CHARS)))
        retried = await run.ask(f"explain[{item.item_id}]:retry", again, ExplanationOutput, ctx.explanation_temperature, 100,
                                attempts=ctx.explanation_attempts)
        second = clip_sentence(retried.explanation, EXPLANATION_CHARS) if retried is not None else None
        text = second if second is not None and not says_nothing(second, item.title, item.category) else None
    if text is None:
        why = str(run.error) if first is None else f"twice it only restated the item: {first!r}"
        if not ctx.explanation_fallback:
            return run.update(explanations=[ItemExplanation(**base, text=first or "", error=why)])
        run.flags.append(f"explain[{item.item_id}]: fallback sentence ({why[:200]})")
        past = past_item_like(resources.dataset, state.get("history_item_ids", []), item.category)
        return run.update(explanations=[ItemExplanation(**base, text=fallback_sentence(state["tag"].tag, item.title, item.category, past),
                                                        error=why, fallback=True)])
    problems = [f"style guideline failed, template used: {state['style_error']}"] if state.get("style_error") else []
    explanation = ItemExplanation(**base, text=text, error="; ".join(problems) or None)
    return run.update(explanations=[explanation])
