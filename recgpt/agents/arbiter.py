"""Decision Arbiter: the whole tag pool in, the final top-N tags out."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from recgpt.agents.common import AgentCall, messages
from recgpt.agents.expert import TAG_MAX_CHARS
from recgpt.agents.words import known_words, near_duplicate, tidy_words
from recgpt.prompts.arbiter import ARBITER_INSTRUCTIONS, EVIDENCE_INSTRUCTION, REASON_INSTRUCTION
from recgpt.schema.context import Context
from recgpt.schema.state import FinalTag, ProposedTag, RecState
from recgpt.services.resources import Resources
from recgpt.text_fields import TAG_WORDS, english_text
from recgpt.tools.llm import failure_flag

REASON_CHARS = 100


def arbiter_schema(n: int, pool_size: int, reason_chars: int = REASON_CHARS) -> type[BaseModel]:
    """Exactly n candidate numbers in 1..pool_size (server-enforced) and a one-sentence reason (none when
    `reason_chars` is 0: a decode cut, `Context.arbiter_reason_chars`).

    The numbers are an `enum`, not `minimum`/`maximum`: grammar backends enforce enums exactly,
    while unbounded integer digits let a tiny model write one number until max_tokens.
    """
    number = Literal[tuple(range(1, pool_size + 1))]  # type: ignore[valid-type]
    fields: dict[str, Any] = {"selected": (list[number], Field(min_length=n, max_length=n))}
    if reason_chars:
        fields["reason"] = (english_text(reason_chars, min_chars=0), ...)
    return create_model("ArbiterOutput", **fields, __doc__="Selected candidate numbers, best first.")


def dedupe_pool(pool: list[ProposedTag]) -> list[ProposedTag]:
    """Drop exact (case/space-insensitive) duplicates, keeping the first proposer."""
    seen: set[str] = set()
    unique = []
    for tag in pool:
        key = " ".join(tag.tag.lower().split())
        if key and key not in seen:
            seen.add(key)
            unique.append(tag)
    return unique


def round_robin(pool: list[ProposedTag]) -> list[ProposedTag]:
    """Pool order that alternates personas: the fair fallback when the arbiter cannot decide."""
    by_persona: dict[int, list[ProposedTag]] = {}
    for tag in pool:
        by_persona.setdefault(tag.persona_index, []).append(tag)
    queues = [by_persona[k] for k in sorted(by_persona)]
    out: list[ProposedTag] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def select(pool: list[ProposedTag], chosen: list[int], n: int) -> tuple[list[FinalTag], bool]:
    """Map 1-based choices onto the pool, drop repeats, fill up to n round-robin. Returns (tags, filled)."""
    picked: list[ProposedTag] = []
    for number in chosen:
        if 1 <= number <= len(pool) and pool[number - 1] not in picked:
            picked.append(pool[number - 1])
    filled = False
    for tag in round_robin(pool):
        if len(picked) >= min(n, len(pool)):
            break
        if tag not in picked:
            picked.append(tag)
            filled = True
    return [FinalTag(**t.model_dump(), rank=i + 1) for i, t in enumerate(picked[:n])], filled


def with_prior(pool: list[ProposedTag], chosen: list[FinalTag], shares: dict[str, float], n: int,
               weight: float) -> list[FinalTag]:
    """The final `n` tags when the arbiter's choice is combined with the collaborative prior
    (`Context.arbiter_prior` = `weight`): each pooled tag scores `(1 − weight) · choice + weight · mass`, where choice
    is 1 for the arbiter's first pick down to 1/n for its last (0 unpicked) and mass is its category's share over the
    pool's largest share (0 for a free tag or a category SASRec gives nothing). Ties keep the arbiter's order, then
    the pool's. `weight` 0 is the arbiter's choice unchanged; 1 ranks the pool by mass alone."""
    if weight <= 0 or not shares:
        return chosen
    picked = {(t.tag, t.category, t.persona_index): t.rank for t in chosen}
    top = max((shares.get(t.category or "", 0.0) for t in pool), default=0.0) or 1.0

    def score(position: int) -> tuple[float, int, int]:
        tag = pool[position]
        rank = picked.get((tag.tag, tag.category, tag.persona_index))
        choice = (n - rank + 1) / n if rank is not None else 0.0
        mass = shares.get(tag.category or "", 0.0) / top
        return (-((1.0 - weight) * choice + weight * mass), rank if rank is not None else n + 1, position)

    order = sorted(range(len(pool)), key=score)[:n]
    return [FinalTag(**pool[p].model_dump(), rank=i + 1) for i, p in enumerate(order)]


def distinct_categories(pool: list[ProposedTag], chosen: list[FinalTag], n: int,
                        shares: dict[str, float]) -> tuple[list[FinalTag], int]:
    """One final tag per category (`Context.arbiter_distinct_categories`): a chosen tag whose category an earlier
    final tag already holds is dropped, and the place goes to a pooled tag of a category not yet shown, the largest
    collaborative share first (pool order without the evidence). A free tag counts by its words. Returns the tags,
    ranked again from 1, and how many were replaced.

    Two final tags of one category retrieve from the same items (the demo's "photo paper" and "photo paper inch x
    inches ...", both *Photo Paper*): the second shows the shopper nothing new and costs a slot of the top K."""
    def key(tag: ProposedTag) -> str:
        return tag.category or " ".join(tag.tag.lower().split())

    kept: list[ProposedTag] = []
    seen: set[str] = set()
    for tag in chosen:
        if key(tag) not in seen:
            kept.append(tag)
            seen.add(key(tag))
    dropped = len(chosen) - len(kept)
    spare = sorted(range(len(pool)), key=lambda p: (-shares.get(pool[p].category or "", 0.0), p))
    for position in spare:
        if len(kept) >= n:
            break
        if key(pool[position]) not in seen:
            kept.append(pool[position])
            seen.add(key(pool[position]))
    final = [FinalTag(**{**t.model_dump(exclude={"rank"}), "rank": i + 1}) for i, t in enumerate(kept[:n])]
    return final, dropped


def evidence_note(category: str | None, shares: dict[str, float]) -> str:
    """A pooled tag's collaborative mass as the arbiter reads it: ` (evidence 8%)`; `<1%` for a category SASRec gives
    almost nothing; "" without evidence (the block off) or for a free tag."""
    if not shares or not category:
        return ""
    share = shares.get(category, 0.0)
    return f" (evidence {round(100 * share)}%)" if share >= 0.005 else " (evidence <1%)"


async def arbiter_node(state: RecState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    ctx = runtime.context
    pool = dedupe_pool(state.get("tag_pool", []))
    run = AgentCall("arbiter", ctx, await resources.aendpoints(ctx))
    n = min(ctx.num_tags, len(pool))
    all_shares: dict[str, float] = state.get("category_shares") or {}  # the evidence's category shares ({}: off)
    if len(pool) <= ctx.num_tags:  # nothing to choose: no call
        if not pool:
            run.flags.append("no_tags: every expert failed, nothing to arbitrate")
        return run.update(tags=finalise(run, pool, select(pool, [], n)[0], all_shares, n, ctx, known_words(resources.dataset)))
    shares = all_shares if ctx.arbiter_evidence else {}
    listing = "\n".join(f"{i}: {t.tag}{f' [{t.category}]' if t.category else ''}{evidence_note(t.category, shares)} — {t.persona}"
                        for i, t in enumerate(pool, start=1))
    reason = ctx.arbiter_reason_chars
    instructions = ARBITER_INSTRUCTIONS.format(pool=listing, n=n, reason=REASON_INSTRUCTION if reason else "")
    prompt = messages(state["shared_prefix"], instructions + ("\n" + EVIDENCE_INSTRUCTION if shares else ""))
    output = await run.ask("arbiter", prompt, arbiter_schema(n, len(pool), reason), ctx.arbiter_temperature,
                           6 * n + 30 + reason * 3 // 5, ctx.seed,
                           flag=lambda exc: failure_flag("arbiter", exc) + f"; kept the first {n} tags round-robin across personas")
    tags, filled = select(pool, list(output.selected) if output is not None else [], n)
    if output is not None and filled:
        run.flags.append("arbiter_repeated_choices: filled the rest round-robin from the pool")
    return run.update(tags=finalise(run, pool, tags, all_shares, n, ctx, known_words(resources.dataset)))


def finalise(run: AgentCall, pool: list[ProposedTag], chosen: list[FinalTag], shares: dict[str, float], n: int,
             ctx: Context, known: frozenset[str] = frozenset()) -> list[FinalTag]:
    """The arbiter's choice, combined with the collaborative prior, then one tag per category when asked, then the
    places left empty filled from the evidence when asked, then each tag's words tidied of title filler when asked."""
    tags = with_prior(pool, chosen, shares, n, ctx.arbiter_prior)
    if ctx.arbiter_distinct_categories:
        tags, replaced = distinct_categories(pool, tags, n, shares)
        if replaced:
            run.flags.append(f"arbiter_same_category: {replaced} final tag(s) repeated an earlier tag's category; "
                             "replaced from the pool by new categories where it had them")
    if ctx.arbiter_fill_from_evidence and shares and tags:  # no tags at all is the LLM failing: flagged, never masked
        tags, filled = fill_from_evidence(tags, ctx.num_tags, shares, {})
        if filled:
            run.flags.append(f"arbiter_filled_from_evidence: the pool named {len(tags) - filled} distinct categories; "
                             f"{filled} more from the collaborative evidence")
    tags = [tidied(t, known) for t in tags] if ctx.tidy_tags else tags
    if ctx.arbiter_distinct_words:
        tags, relabelled = distinct_words(tags)
        if relabelled:
            run.flags.append(f"arbiter_same_words: {len(relabelled)} final tag(s) read like an earlier one; shown under "
                             "their category's name instead: " + "; ".join(f"{a!r} -> {b!r}" for a, b in relabelled))
    return tags


def category_label(tag: FinalTag) -> str:
    """The last level of a grounded tag's category ("Movies > Thriller" -> "Thriller"); '' for a free tag."""
    return (tag.category or "").rpartition(" > ")[2]


def distinct_words(tags: list[FinalTag]) -> tuple[list[FinalTag], list[tuple[str, str]]]:
    """No two final tags that read alike (`Context.arbiter_distinct_words`): of a pair that `words.near_duplicate`
    matches, the one whose words are not its own category's name is shown under that name, the later one first; a
    pair neither of which can be renamed without a new repeat stays as it is. Categories (and so the retrieved
    shelves) never change, only the words a shopper reads; returns the tags and each (old, new) renaming.

    On MovieLens the repeats were one genre shown twice (an expert's "Thriller" grounded in *Action*, then the genre
    *Thriller* filled from the evidence under its own name) and title pairs ("Terminator", "Terminator 2") grounded
    in two genres: 4.2% of final tags (`reports/readability-movielens-test.md`)."""
    out = list(tags)
    renamed: list[tuple[str, str]] = []

    def clashes(words: str, skip: int) -> bool:
        return any(near_duplicate(words, t.tag) for m, t in enumerate(out) if m != skip)

    for later in range(len(out)):
        for earlier in range(later):
            if not near_duplicate(out[later].tag, out[earlier].tag):
                continue
            for k in (later, earlier):
                label = category_label(out[k])
                if label and label.lower() != out[k].tag.lower() and not clashes(label, k):
                    renamed.append((out[k].tag, label))
                    out[k] = out[k].model_copy(update={"tag": label, "written": out[k].written or out[k].tag})
                    break
    return out, renamed


def tidied(tag: FinalTag, known: frozenset[str] = frozenset()) -> FinalTag:
    """`tag` with its words tidied (`text_fields.tidy_tag`), and, given the catalogue's `known` words, without a word
    neither the catalogue nor English uses ("gelpp": `words.is_unknown`); the expert's own words stay in `written`.
    A tag left with no words is named after its category's last level."""
    words = tidy_words(tag.tag, known, TAG_WORDS, TAG_MAX_CHARS)
    words = words or (tag.category or "").rpartition(" > ")[2].lower() or tag.tag
    return tag if words == tag.tag else tag.model_copy(update={"tag": words, "written": tag.tag})


EVIDENCE_PERSONA = "collaborative evidence"
"""The persona a filled final tag is credited to: it came from the evidence block, not from an expert."""


def fill_from_evidence(chosen: list[FinalTag], n: int, shares: dict[str, float], label_of: dict[str, str]) -> tuple[list[FinalTag], int]:
    """Up to `n` final tags: when the pool held fewer distinct categories than the `n` the arbiter must keep, the empty
    places go to the categories of the collaborative evidence not yet named, largest share first
    (`Context.arbiter_fill_from_evidence`). A filled tag's words are its category's own label and its persona
    `EVIDENCE_PERSONA`, so a trace shows where it came from. Returns the tags and how many were filled.

    On MovieLens the experts' pool names ~4 distinct genres for most users, so `arbiter_distinct_categories` leaves 6
    of 10 places empty; the evidence knows which genres come next."""
    named = {t.category for t in chosen if t.category}
    filled: list[FinalTag] = []
    for category in sorted(shares, key=lambda c: (-shares[c], c)):
        if len(chosen) + len(filled) >= n:
            break
        if category in named or shares[category] <= 0:
            continue
        words = label_of.get(category, category.split(" > ")[-1])
        filled.append(FinalTag(tag=words, rationale="", persona_index=-1, persona=EVIDENCE_PERSONA, category=category,
                               rank=len(chosen) + len(filled) + 1))
        named.add(category)
    return chosen + filled, len(filled)
