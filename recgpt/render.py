"""Human-readable rendering of a run's final state (rich) and its JSON form."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from recgpt.schema.state import result_keys


def _terms(item: Any) -> str:
    """The user-aware retriever's score terms of an item, when it ranked by them."""
    if item.score is None:
        return ""
    return f"  (score {item.score:.2f}: semantic {item.semantic:.2f}, collaborative {item.collaborative:.2f})"


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def result_json(state: dict[str, Any]) -> str:
    return json.dumps({k: to_jsonable(state.get(k)) for k in result_keys()}, indent=2, ensure_ascii=False)


def usage_totals(state: dict[str, Any]) -> dict[str, float]:
    calls = state.get("calls", [])
    return {
        "llm_calls": len(calls),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls),
        "llm_seconds": sum(c.latency_s for c in calls),
    }


def render_result(console: Console, state: dict[str, Any], seconds: float | None = None) -> None:
    stats = state.get("context_stats")
    header = Text(f"user {state.get('user_id')} · dataset {state.get('dataset')} · split {state.get('split')}", style="bold")
    parts: list[Any] = [header]
    if stats is not None:
        parts.append(Text(
            f"history: {stats.n_events} interactions ({stats.n_listed_items} listed, {stats.n_summarised_events} summarised) · "
            f"shared prefix: {stats.prefix_tokens if stats.prefix_tokens is not None else '?'} tokens", style="dim"))
        parts.append(Text(stats.environment.replace("\n", " · "), style="dim"))
    personas = Table(title="Personas (Global Planner)", show_lines=False, expand=True)
    personas.add_column("#", width=3)
    personas.add_column("persona")
    personas.add_column("focus")
    for i, p in enumerate(state.get("personas", [])):
        personas.add_row(str(i), p.name, p.focus)
    parts.append(personas)
    recs = Table(title="Tags (Decision Arbiter) → catalogue items", show_lines=True, expand=True)
    recs.add_column("rank", width=4)
    recs.add_column("tag / rationale", ratio=2)
    recs.add_column("category (grounded / nearest)", ratio=1)
    recs.add_column("items (not in history)", ratio=2)
    for rec in state.get("recommendations", []):
        recs.add_row(
            str(rec.tag.rank),
            Text.assemble((rec.tag.tag, "bold"), *(("\n", (rec.tag.rationale, "dim")) if rec.tag.rationale else ())),
            Text.assemble(rec.category or "-", ("\ngrounded" if rec.tag.category else "\nnearest to the tag", "dim")),
            "\n".join(f"• {item.title[:70]}  [{item.category.split(' > ')[-1]}]" + _terms(item) for item in rec.items) or "-",
        )
    parts.append(recs)
    verdicts = {(j.target_kind, j.target_id): j for j in state.get("judgements", [])}
    for rec in state.get("recommendations", []):
        judged = verdicts.get(("tag", rec.tag.tag))
        if judged is not None:
            parts.append(Text(f"judge · tag '{rec.tag.tag}': {judged.overall or 'abstained'} "
                              + " ".join(f"{v.dimension}={v.grade or '?'}" for v in judged.verdicts), style="cyan"))
    if state.get("explanations"):
        modes = {e.mode for e in state["explanations"]}
        written = modes != {"grounded"}  # 'grounded' (the default): made by code from the history, no guideline
        title = {"meta": "meta-prompting", "template": "V1 template", "grounded": "grounded in the history, no LLM call"}
        table = Table(title=f"Explanations ({', '.join(title[m] for m in sorted(modes))})", show_lines=True, expand=True)
        table.add_column("item", ratio=1)
        if written:
            table.add_column("style guideline", ratio=1)
        table.add_column("explanation", ratio=2)
        table.add_column("judge", width=10)
        for e in state["explanations"]:
            g = e.guideline
            style = f"{g.tone} · {g.audience} · {g.emotional_angle} · {g.rhetorical_device} · {g.seasonal_framing}" if g else e.mode
            judged = verdicts.get(("explanation", e.item_id))
            text = (e.text or f"(failed: {e.error})") + (" (made by code: the writer's answers failed its checks)" if e.fallback else "")
            row = [e.title[:60], *([style] if written else []), text, (judged.overall or "abstained") if judged else "-"]
            table.add_row(*row)
        parts.append(table)
    totals = usage_totals(state)
    line = (f"{totals['llm_calls']} LLM calls · {totals['prompt_tokens']} prompt / {totals['completion_tokens']} "
            f"completion tokens")
    if seconds is not None:
        line += f" · {seconds:.1f} s"
    parts.append(Text(line, style="dim"))
    for flag in state.get("flags", []):
        parts.append(Text(f"⚑ {flag}", style="yellow"))
    console.print(Panel(Group(*parts), expand=True))
