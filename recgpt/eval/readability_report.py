"""`recgpt eval-readability`: the whole graph (explanations on, judge off) over sampled users, and the share of its
outputs with each defect of `readability` (personas, tags, explanations, shown items), with examples.

Per-user outputs are appended to a store keyed by the config, the served model, the prompts and the data, so a killed
run resumes and a changed prompt never reads stale answers. The report names the model it ran on.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from recgpt.agents import arbiter as arbiter_agent
from recgpt.agents import explainer as explainer_agent
from recgpt.agents import planner as planner_agent
from recgpt.agents import words
from recgpt.data import Dataset
from recgpt.errors import EndpointError, RecGPTError
from recgpt.eval import readability as r
from recgpt.eval.harness import sample_users
from recgpt.eval.report import model_label, write_report_files
from recgpt.eval.runs import KeyedStore, UserSample, has_timestamps, progress_bar
from recgpt.graph import build_graph
from recgpt.prompts import arbiter, evidence, expert, explainer, planner, shared
from recgpt.schema.context import Context
from recgpt.services.endpoints import check_endpoint, served_model_identity
from recgpt.services.resources import Resources, endpoints_of, resolve

UNITS = {"persona": r.PERSONA_DEFECTS, "tag": r.TAG_DEFECTS, "explanation": r.EXPLANATION_DEFECTS,
         "item": r.ITEM_DEFECTS}
EXAMPLES = 3


class ReadabilityConfig(UserSample):
    users: int = Field(default=100, ge=1)
    concurrency: int = Field(default=8, ge=1, description="Users in flight at once against the LLM server.")
    date: str = Field(default="2026-11-25", description="Situation date for datasets without timestamps.")
    context: dict[str, Any] = Field(default_factory=dict, description="Runtime Context overrides (--set FIELD=VALUE).")

    def ctx(self) -> Context:
        # the shipped default's explanations (code-made 'grounded' on the default policy); `--set
        # explanation_mode=meta` measures the LLM writer's own sentences
        return Context(**{"judge_mode": "off", **self.context})


class UserOutputs(BaseModel):
    """What one user was shown, as the detectors read it."""

    user_id: str
    personas: list[tuple[str, str]] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    shown: list[tuple[str, str | None]] = Field(default_factory=list, description="(item_id, its tag's category)")
    explanations: list[tuple[str, str, str]] = Field(default_factory=list, description="(text, item title, category)")
    flags: list[str] = Field(default_factory=list)
    error: str | None = None
    fallbacks: int = Field(default=0, description="Explanations made by code (`Context.explanation_fallback`).")


def outputs_of(user_id: str, state: dict[str, Any]) -> UserOutputs:
    recs = state.get("recommendations", [])
    return UserOutputs(
        user_id=user_id,
        personas=[(p.name, p.focus) for p in state.get("personas", [])],
        tags=[t.tag for t in state.get("tags", [])],
        shown=[(item.item_id, rec.tag.category or rec.category) for rec in recs for item in rec.items],
        explanations=[(e.text, e.title, e.category) for e in state.get("explanations", []) if e.text],
        flags=list(state.get("flags", [])), fallbacks=sum(e.fallback for e in state.get("explanations", [])))


def store_key(config: ReadabilityConfig, dataset: Dataset, model: str) -> str:
    # the prompts and the agents' own guards (a changed persona guard or fallback sentence is another run)
    text = "".join(inspect.getsource(m) for m in (shared, planner, expert, arbiter, evidence, explainer, planner_agent,
                                                  arbiter_agent, explainer_agent, words))
    payload = {"config": config.model_dump(exclude={"concurrency", "users"}), "model": model,
               "data": dataset.content_hash(), "prompts": hashlib.sha256(text.encode()).hexdigest()[:12],
               # every knob of the run's Context (defaults included: a changed default is another run), not where it ran
               "context": {k: v for k, v in vars(config.ctx()).items() if not k.endswith(("base_url", "api_key"))}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def audit(outputs: Sequence[UserOutputs], dataset: Dataset) -> dict[str, Any]:
    """Each defect's count over its unit (personas, tags, explanations or shown items), its rate, and examples."""
    lexicon = r.Lexicon.of(dataset)
    counts = {d: 0 for d in r.DEFECTS}
    totals = dict.fromkeys(UNITS, 0)
    examples: dict[str, list[str]] = {d: [] for d in r.DEFECTS}
    users_with_any = 0

    def note(found: list[list[str]], shown_as: Sequence[str], unit: str) -> bool:
        totals[unit] += len(found)
        for defects, text in zip(found, shown_as):
            for d in defects:
                counts[d] += 1
                if len(examples[d]) < EXAMPLES and text not in examples[d]:
                    examples[d].append(text)
        return any(found_one for found_one in found)

    for out in outputs:
        any_defect = note(r.persona_defects(out.personas, lexicon), [f"{n} | {f}" for n, f in out.personas], "persona")
        any_defect |= note(r.tag_defects(out.tags, lexicon), out.tags, "tag")
        any_defect |= note([r.explanation_defects(*e) for e in out.explanations],
                           [f"{t}  [item: {title}]" for t, title, _ in out.explanations], "explanation")
        any_defect |= note(r.item_defects(out.shown, dataset),
                           [f"{dataset.items[i].title[:60] if i in dataset.items else i} under {c}" for i, c in out.shown],
                           "item")
        users_with_any += any_defect
    unit_of = {d: unit for unit, ds in UNITS.items() for d in ds}
    rows = [{"defect": d, "unit": unit_of[d], "count": counts[d], "of": totals[unit_of[d]],
             "rate": counts[d] / totals[unit_of[d]] if totals[unit_of[d]] else None, "examples": examples[d]}
            for d in r.DEFECTS]
    return {"users": len(outputs), "totals": totals, "defects": rows,
            "users_with_any_defect": users_with_any / len(outputs) if outputs else None,
            "explanations_by_code": sum(o.fallbacks for o in outputs)}


async def _run(config: ReadabilityConfig, resources: Resources, store: KeyedStore, users: list[str],
               show_progress: bool) -> None:
    ctx = config.ctx()
    graph = build_graph(resources)
    date = None if has_timestamps(resources.dataset) else config.date
    todo = [u for u in users if u not in store or store.values[u].get("error")]
    gate = asyncio.Semaphore(config.concurrency)

    async def one(user_id: str) -> UserOutputs:
        async with gate:
            payload = {"user_id": user_id, "dataset": config.dataset, "split": config.split, "date": date}
            try:
                return outputs_of(user_id, await graph.ainvoke(payload, context=ctx))
            except EndpointError as exc:
                return UserOutputs(user_id=user_id, error=str(exc))

    with progress_bar(show_progress) as progress:
        task = progress.add_task(f"readability on {len(todo)} users (concurrency {config.concurrency})", total=len(todo))
        for finished in asyncio.as_completed([one(u) for u in todo]):
            out = await finished
            store.put(out.user_id, out.model_dump(mode="json"))
            progress.advance(task)


def run_readability(config: ReadabilityConfig, home: Path, show_progress: bool = True,
                    resources: Resources | None = None) -> dict[str, Any]:
    """Run (or resume) the users and audit their outputs. `resources` None resolves `config.dataset` and builds its
    index and SASRec for the split first; given resources are used as they are."""
    ctx = config.ctx()
    check_endpoint(ctx)
    if resources is None:
        resources = resolve(config.dataset)
        resources.registry.prepare(resources.dataset, config.split, show_progress=show_progress)
    dataset = resources.dataset
    endpoint = endpoints_of(ctx, resources.registry).policy  # what the graph's agents will talk to, model resolved
    model = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
    users = sample_users(dataset, config.split, config.users, config.seed)
    key = store_key(config, dataset, model)
    store = KeyedStore(home / "eval" / f"readability-{key}.jsonl")
    asyncio.run(_run(config, resources, store, users, show_progress))
    outputs = [UserOutputs.model_validate(store.values[u]) for u in users if u in store]
    failed = [o for o in outputs if o.error]
    if len(failed) == len(users):
        raise RecGPTError(f"every user failed; first error: {failed[0].error}")
    summary = audit([o for o in outputs if not o.error], dataset)
    return {"config": config.model_dump(mode="json"), "model": model, "store": str(store.path),
            "explanation_mode": config.ctx().explanation_mode,
            "failed_users": len(failed), **summary}


def reaudit(report: Path, resources: Resources | None = None) -> dict[str, Any]:
    """A written report's stored outputs counted again with today's detectors, without the LLM: a detector added or
    fixed after a run is applied to the same outputs. The report must name its store, and the store must hold every
    user it audited."""
    try:
        summary = json.loads(report.read_text())
        config = ReadabilityConfig.model_validate(summary["config"])
        store = KeyedStore(Path(summary["store"]))
    except (OSError, ValueError, KeyError) as exc:
        raise RecGPTError(f"{report}: not a readability report with its store ({type(exc).__name__}: {exc})") from None
    dataset = (resources or resolve(config.dataset)).dataset
    users = sample_users(dataset, config.split, config.users, config.seed)
    outputs = [UserOutputs.model_validate(store.values[u]) for u in users if u in store]
    if len(outputs) < len(users):
        raise RecGPTError(f"{store.path} holds {len(outputs)} of the report's {len(users)} users: rerun eval-readability")
    failed = [o for o in outputs if o.error]
    return {"config": summary["config"], "model": summary["model"], "store": str(store.path),
            "failed_users": len(failed), **audit([o for o in outputs if not o.error], dataset),
            "reaudited": True}


def markdown(summary: dict[str, Any], model: str) -> str:
    cfg = summary["config"]
    lines = [f"# Readability: {cfg['dataset']} {cfg['split']}", "",
             f"Model: **{model_label(model)}**. {summary['users']} users (seed {cfg['seed']}), the whole graph with "
             f"explanations `{summary.get('explanation_mode', 'meta')}`, judge off; context overrides: "
             f"`{json.dumps(cfg['context']) if cfg['context'] else 'none'}`. Failed users: {summary['failed_users']}."
             + (" Counted again from the run's stored outputs with later detectors (`--reaudit`): the outputs are "
                "those of the run, the counts today's." if summary.get("reaudited") else ""), "",
             "Each defect is counted by code (`recgpt/eval/readability.py`) over its unit: personas, final tags, "
             "explanations, or shown items. The target is at most 2% each.", "",
             "| defect | unit | count | of | rate | examples |", "|---|---|---:|---:|---:|---|"]
    for row in summary["defects"]:
        rate = "n/a" if row["rate"] is None else f"{row['rate']:.1%}"
        shown = " / ".join(f"`{e.replace('|', '/').replace('`', '')}`" for e in row["examples"][:2])
        lines.append(f"| {row['defect']} | {row['unit']} | {row['count']} | {row['of']} | {rate} | {shown} |")
    share = summary["users_with_any_defect"]
    by_code, written = summary.get("explanations_by_code", 0), summary["totals"]["explanation"]
    lines += ["", f"Users with at least one defect: {'n/a' if share is None else f'{share:.1%}'}.", "",
              f"Explanations made by code because every answer of the writer failed its checks "
              f"(`explanation_fallback`, counted among the explanations above): {by_code} of {written}"
              + (f" ({by_code / written:.1%})." if written else "."), "",
              f"Reproduce: `recgpt eval-readability --dataset {cfg['dataset']} --split {cfg['split']} "
              f"--users {cfg['users']} --seed {cfg['seed']}"
              + "".join(f" --set {k}={v}" for k, v in cfg["context"].items()) + "`"]
    return "\n".join(lines) + "\n"


def write_readability_report(summary: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    cfg = summary["config"]
    stem = out_dir / f"readability-{Path(cfg['dataset']).name}-{cfg['split']}"
    md_path, json_path, _ = write_report_files(stem, summary, summary["model"], markdown, lambda _r, _p: None)
    return md_path, json_path
