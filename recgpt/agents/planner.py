"""Global Planner: the whole context in, K complementary personas out."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from recgpt.agents.common import AgentCall, messages
from recgpt.agents.words import is_unknown, known_words, tidy_words
from recgpt.data import Dataset, Item
from recgpt.errors import InvalidModelOutput
from recgpt.prompts.planner import AGENT_ROLES, EVIDENCE_INSTRUCTION, PLANNER_INSTRUCTIONS
from recgpt.schema.context import Context
from recgpt.schema.state import Persona, RecState
from recgpt.services.resources import Resources
from recgpt.text_fields import DANGLING_WORDS, FILLER_WORDS, GENERIC_WORDS, tidy_tag, to_english_text, words_of
from recgpt.tools.llm import LLMRequestRejected

TOKENS_PER_PERSONA = 120


EVIDENCE_TOKENS = 40


def planner_schema(k: int, evidence: bool = True) -> type[BaseModel]:
    """`{"personas": [Persona × k]}`; the exact count is enforced by the server's JSON schema. Without `evidence` (a
    decode cut, `Context.planner_evidence`) a persona is its name and focus: the experts read nothing else."""
    persona: type[BaseModel] = Persona
    if not evidence:
        persona = create_model("Persona", name=(Persona.model_fields["name"].annotation, Persona.model_fields["name"]),
                               focus=(Persona.model_fields["focus"].annotation, Persona.model_fields["focus"]), __doc__=Persona.__doc__)
    return create_model(
        "PlannerOutput", personas=(list[persona], Field(min_length=k, max_length=k)), __doc__="Personas of the user."  # type: ignore[valid-type]
    )


def fallback_personas(state: RecState) -> list[Persona]:
    """One history-wide persona, used when the planner's output is unusable (flagged)."""
    evidence = [to_english_text(line.split(" · ", 1)[-1].split(":", 1)[0], 40) for line in state.get("shared_prefix", "").splitlines()
                if line.startswith("- ")]
    top = [c for c, _ in Counter(evidence).most_common(2) if c]
    return [Persona(name="the user as the whole history shows", focus="more of what the most frequent categories show", evidence=top)]


async def planner_node(state: RecState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    ctx = runtime.context
    run = AgentCall("planner", ctx, await resources.aendpoints(ctx))
    evidence = ctx.planner_evidence
    prompt = messages(state["shared_prefix"], PLANNER_INSTRUCTIONS.format(k=ctx.num_personas, evidence=EVIDENCE_INSTRUCTION if evidence else ""))
    # An unreachable endpoint is not caught: the node's RetryPolicy retries it, then the run fails clearly.
    output = await run.ask("planner", prompt, planner_schema(ctx.num_personas, evidence),
                           ctx.planner_temperature, (TOKENS_PER_PERSONA - (0 if evidence else EVIDENCE_TOKENS)) * ctx.num_personas + 60,
                           ctx.seed, failures=(InvalidModelOutput, LLMRequestRejected), flag=lambda exc: f"planner_failed: {exc}")
    if output is None:  # the code-made fallback persona needs no tidying
        return run.update(personas=fallback_personas(state))
    personas = [Persona.model_validate(p.model_dump()) for p in output.personas][: ctx.num_personas]
    personas, fixed = tidy_personas(personas, known_words(resources.dataset), spare_foci(state, resources.dataset))
    if fixed:
        run.flags.append(f"planner_personas_tidied: {fixed}")
    return run.update(personas=personas)


def is_role_name(name: str) -> bool:
    """An agent's role ("Global Planner", "Decision Arbiter role") or a bare "user": a multi-word role anywhere in the
    name, a one-word role only as the whole name (a "wedding planner" is a shopper)."""
    words = " ".join(name.lower().strip(" .").split())
    return words in {"user", "the user", "shopper", "customer", "persona", *AGENT_ROLES} or any(
        f" {role} " in f" {words} " for role in AGENT_ROLES if " " in role)


def is_person_name(name: str, known: Collection[str]) -> bool:
    """One or two capitalised words that no catalogue text uses ("Glen", "Rebecca Stone"): a person, where a persona
    label like "Busy Parent" or "Home Office Organizer" uses the shop's or common words. `known` is the
    catalogue's vocabulary (`words.known_words`)."""
    parts = name.strip().split()
    if parts and parts[0].rstrip(".").lower() in HONORIFICS:
        return True  # "Mrs. Crystal Whitehouse"
    if not 1 <= len(parts) <= 2 or not all(p[:1].isupper() and p[1:].islower() and p.isalpha() for p in parts):
        return False
    return all(p.lower() not in known and p.lower() not in GENERIC_WORDS for p in parts)


PROMPT_EXAMPLE_NAMES = frozenset(" ".join(e.lower().split()) for e in re.findall(r'"([^"]+)"', PLANNER_INSTRUCTIONS))
"""The persona labels the planner's prompt gives as examples: a name that is one of them was copied from the prompt
(the untrained base does it on MovieLens, the Office policy for 1 persona in 10), not written for this user."""


def copies_an_example(name: str) -> bool:
    return " ".join(name.lower().split()) in PROMPT_EXAMPLE_NAMES


HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "dr", "sir", "madam", "mx"})


def pastes_path(text: str) -> bool:
    """A category path pasted as a persona's name or focus ("office & school supplies > tape > adhesive & fast-")."""
    return ">" in text


def knows_a_word(focus: str, known: Collection[str]) -> bool:
    """Whether `focus` has a content word (three letters or more) the shop uses: "w" and "book&" have none."""
    return not known or any(len(w) >= 3 and w in known for w in focus_words(focus))


FOCUS_OVERLAP = 0.8
"""Two foci sharing this share of their content words (Jaccard) point at one kind of product."""


def focus_words(focus: str) -> set[str]:
    return set(words_of(focus)) - GENERIC_WORDS - FILLER_WORDS


def repeats_focus(focus: str, earlier: Iterable[str]) -> bool:
    """Whether `focus` names the same kind of product as one of the `earlier` foci (the demo's two "home decor
    supplies and gesture accessories boxes inch yellow pack of")."""
    mine = focus_words(focus)
    return bool(mine) and any(len(mine & other) / len(mine | other) >= FOCUS_OVERLAP
                              for other in map(focus_words, earlier) if other)


def names_half_of(focus: str, category: str) -> bool:
    """Whether `focus` already uses at least half of `category`'s words ("printer ink for the home office" and
    "Inkjet Printer Ink"): that category is taken, not spare."""
    wanted = focus_words(category)
    return bool(wanted) and len(wanted & focus_words(focus)) * 2 >= len(wanted)


def spare_foci(state: RecState, dataset: Dataset) -> list[str]:
    """Categories a duplicated persona can take over, best first: the history's leaf categories by how often the user
    bought in them (newest first on ties), then the collaborative evidence's by share. Nothing here reads a target."""
    leaves = [leaf_of(dataset.items[i]) for i in state.get("history_item_ids", []) if i in dataset.items]
    counts = Counter(leaf for leaf in leaves if leaf)
    by_history = sorted(counts, key=lambda leaf: (-counts[leaf], leaves.index(leaf)))
    shares = state.get("category_shares", {})
    by_evidence = [path.rsplit(" > ", 1)[-1] for path in sorted(shares, key=lambda p: -shares[p])]
    return list(dict.fromkeys(by_history + by_evidence))


def leaf_of(item: Item) -> str:
    return item.category_path[-1] if item.category_path else (item.genres[0] if item.genres else "")


def name_key(name: str) -> str:
    """What a shopper compares two persona names by: lower-cased words, without a numbering suffix ("Comedy shopper
    (2)" is "comedy shopper": a number does not make a second persona)."""
    return " ".join(re.sub(r"\s*\(\d+\)\s*$", "", name).lower().split())


PERSONA_ENDINGS = DANGLING_WORDS | {"and", "&", "with", "for", "of", "or", "in", "to", "by", "the", "a", "an"}
"""Words a persona's name or focus may not end on (the audit's `ENDING_FILLER`): "teacher working on a project in"."""


def shopper_words(text: str, known: frozenset[str], max_words: int) -> str:
    """`words.tidy_words`, then without a token holding a word neither the shop nor English uses, whatever signs it
    carries ("cb&", "clearcase-0", "x-1", which `tidy_words` keeps for their signs), without a word said twice in a
    row ("a a") and without a dangling last word; '' when nothing is left. The readability audit counts exactly these
    in persona names and foci ("persona_filler_or_misspelled")."""
    def cut(token: str) -> bool:
        parts = [w.strip("&") for w in words_of(token) if w.strip("&").isalpha() or "-" in w or "'" in w]
        return bool(known) and any(w not in GENERIC_WORDS and w not in PERSONA_ENDINGS and w not in FILLER_WORDS
                                   and (len(w) == 1 or is_unknown(w, known)) for w in parts)

    kept: list[str] = []
    for token in tidy_words(text, known, max_words).split():
        if cut(token) or (kept and kept[-1].lower() == token.lower()):
            continue
        kept.append(token)
    while kept and kept[-1].lower().strip(".,;:") in PERSONA_ENDINGS:
        kept.pop()
    return " ".join(kept)


def needs_a_new_name(name: str, known: frozenset[str], taken: set[str]) -> bool:
    """An empty name, an agent's role, the prompt's example, a person's name, a pasted path, or a name already taken."""
    return (not name or is_role_name(name) or copies_an_example(name) or is_person_name(name, known)
            or pastes_path(name) or name_key(name) in taken)


def tidy_personas(personas: list[Persona], known: frozenset[str] = frozenset(),
                  spare: Sequence[str] = ()) -> tuple[list[Persona], str]:
    """Personas a shopper can tell apart.

    - A focus that pastes a category path becomes that path's last level; title filler ("inch", "pack of"), repeated
      words and words neither the shop nor English uses ("fusan") leave it, and a name (`words.tidy_words`).
    - A focus that repeats an earlier persona's (`repeats_focus`), or has no word the shop uses ("w"), is replaced by
      the first `spare` category no persona names yet, and the persona is named after it.
    - A name that is an agent's role, the prompt's own example label, a person's name (`is_person_name`), a pasted
      category path or an earlier persona's name is replaced by a label made of its own focus.

    Returns the personas and what was changed ('' when nothing was). The experts read the result, so a renamed
    persona still carries its focus."""
    out: list[Persona] = []
    names: set[str] = set()
    unpasted = renamed = refocused = cleaned_names = 0
    spare_left = list(spare)
    for persona in personas:
        focus = persona.focus
        if ">" in focus:
            focus = focus.rsplit(">", 1)[1].strip().lower() or focus
            unpasted += 1
        focus = shopper_words(focus, known, 10) or focus
        name = persona.name
        evidence = persona.evidence
        if repeats_focus(focus, [p.focus for p in out]) or not knows_a_word(focus, known):
            taken = [p.focus for p in out]
            fresh = next((c for c in spare_left if not any(names_half_of(t, c) for t in taken)), None)
            if fresh is not None:
                spare_left.remove(fresh)
                # the evidence keeps the planner's shape: none where it gave none (`Context.planner_evidence` off)
                focus, name = fresh.lower(), f"{fresh} shopper"
                evidence = [to_english_text(fresh, 40)] if persona.evidence else []
                refocused += 1
        if not needs_a_new_name(name, known, names):
            cleaned = shopper_words(name, known, 6) or name  # "Classic Passport Bag & Wallet Bag x" loses "x"
            if cleaned != name:
                name, cleaned_names = cleaned, cleaned_names + 1
        if needs_a_new_name(name, known, names):
            label = tidy_tag(focus, max_words=4)
            name = (label[:1].upper() + label[1:]) if label else name
            if is_role_name(name) or name_key(name) in names:
                # its focus names what an earlier persona's name already says: a second persona only in words, so it
                # takes a spare category when one is left (numbering it would show the shopper the same persona twice)
                taken = [p.focus for p in out] + [focus]
                fresh = next((c for c in spare_left if name_key(f"{c} shopper") not in names
                              and not any(names_half_of(t, c) for t in taken)), None)
                if fresh is not None:
                    spare_left.remove(fresh)
                    focus, name = fresh.lower(), f"{fresh} shopper"
                    evidence = [to_english_text(fresh, 40)] if persona.evidence else []
                    refocused += 1
                else:
                    name = f"{name} ({len(out) + 1})"
            renamed += 1
        names.add(name_key(name))
        out.append(persona.model_copy(update={"name": to_english_text(name, 50), "focus": to_english_text(focus, 70),
                                              "evidence": evidence}))
    notes = [f"{renamed} renamed (a role, the prompt's example, a person's name or a repeated name)" if renamed else "",
             f"{refocused} duplicated or empty focus(es) replaced by a history or evidence category" if refocused else "",
             f"{unpasted} focus path(s) cut to their last level" if unpasted else "",
             f"{cleaned_names} name(s) lost title filler or unknown words" if cleaned_names else ""]
    return out, "; ".join(n for n in notes if n)
