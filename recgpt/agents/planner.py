"""Global Planner: the whole context in, K complementary personas out."""

from __future__ import annotations

from collections import Counter
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, create_model

from recgpt.agents.common import AgentCall, messages
from recgpt.errors import InvalidModelOutput
from recgpt.prompts.planner import AGENT_ROLES, EVIDENCE_INSTRUCTION, PLANNER_INSTRUCTIONS
from recgpt.schema.context import Context
from recgpt.schema.state import Persona, RecState
from recgpt.services.resources import Resources
from recgpt.text_fields import tidy_tag, to_english_text
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
    personas = ([Persona.model_validate(p.model_dump()) for p in output.personas][: ctx.num_personas] if output is not None
                else fallback_personas(state))
    personas, fixed = tidy_personas(personas)
    if fixed:
        run.flags.append(f"planner_personas_tidied: {fixed}")
    return run.update(personas=personas)


def is_role_name(name: str) -> bool:
    """An agent's role ("Global Planner", "Decision Arbiter role") or a bare "user": a multi-word role anywhere in the
    name, a one-word role only as the whole name (a "wedding planner" is a shopper)."""
    words = " ".join(name.lower().strip(" .").split())
    return words in {"user", "the user", "shopper", "customer", "persona", *AGENT_ROLES} or any(
        f" {role} " in f" {words} " for role in AGENT_ROLES if " " in role)


def tidy_personas(personas: list[Persona]) -> tuple[list[Persona], str]:
    """Personas a shopper can tell apart: a focus that pastes a category path becomes that path's last level; a name
    that is an agent's role or repeats an earlier persona's name is replaced by a label made of its own focus. Returns
    the personas and what was changed ('' when nothing was). The experts read the result, so a renamed persona still
    carries its focus."""
    out: list[Persona] = []
    names: set[str] = set()
    unpasted = renamed = 0
    for persona in personas:
        focus = persona.focus
        if ">" in focus:
            focus = focus.rsplit(">", 1)[1].strip().lower() or focus
            unpasted += 1
        name = persona.name
        if is_role_name(name) or " ".join(name.lower().split()) in names:
            label = tidy_tag(focus, max_words=4)
            name = (label[:1].upper() + label[1:]) if label else name
            if is_role_name(name) or " ".join(name.lower().split()) in names:
                name = f"{name} ({len(out) + 1})"
            renamed += 1
        names.add(" ".join(name.lower().split()))
        out.append(persona.model_copy(update={"name": name[:50], "focus": focus}))
    notes = [f"{renamed} renamed (a role name or a repeated name)" if renamed else "",
             f"{unpasted} focus path(s) cut to their last level" if unpasted else ""]
    return out, "; ".join(n for n in notes if n)
