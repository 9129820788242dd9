"""`recgpt bench-decode`: what each cut of V2's generated text saves in completion tokens, and what it costs in quality.

On CPU servers decode dominates a user's cost (V2 generated about 1,079 completion tokens per user on the 135M
default), so its output length matters as much as its prompt. Each variant is a set of runtime `Context` overrides:

- `shipped`: the text as it was before the cuts (up to 2 evidence words per persona, a 60-character rationale per
  expert tag, a 100-character reason from the arbiter), written out so the row does not move when the defaults do;
- `no-evidence`: the planner writes each persona's name and focus only (the experts never read the evidence);
- `no-rationale`: the experts write tags (and categories) only;
- `no-reason`: the arbiter returns its numbers only;
- `all`: the three cuts together.

The arbiter is already skipped when the pool holds at most N tags, in every variant. Each variant is a resumable
`recgpt eval --method recgpt` run on the same sampled users (validation: the cuts are chosen here, never on test),
so the rows differ only by the override; differences against `shipped` are paired per user, with their standard error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from recgpt import plots
from recgpt.eval.harness import run_eval
from recgpt.eval.metrics import paired_difference
from recgpt.eval.report import summarise
from recgpt.eval.runs import EvalConfig, UserSample, levels_of
from recgpt.services.resources import default_registry

VARIANTS: dict[str, dict[str, int | bool]] = {
    "shipped": {"planner_evidence": True, "expert_rationale_chars": 60, "arbiter_reason_chars": 100},
    "no-evidence": {"planner_evidence": False, "expert_rationale_chars": 60, "arbiter_reason_chars": 100},
    "no-rationale": {"planner_evidence": True, "expert_rationale_chars": 0, "arbiter_reason_chars": 100},
    "no-reason": {"planner_evidence": True, "expert_rationale_chars": 60, "arbiter_reason_chars": 0},
    "all": {"planner_evidence": False, "expert_rationale_chars": 0, "arbiter_reason_chars": 0},
}
BASELINE = "shipped"


class DecodeCutsConfig(UserSample):
    dataset: str = "movielens"
    split: Literal["validation", "test"] = "validation"
    users: int = Field(default=100, ge=2)
    k: int = Field(default=10, ge=1, description="Final tags and K of cat HR@K.")
    concurrency: int = Field(default=16, ge=1)
    variants: list[str] = Field(default_factory=lambda: list(VARIANTS))


def run_decode_cuts(config: DecodeCutsConfig, home: Any, show_progress: bool = True) -> dict[str, Any]:
    dataset = default_registry().dataset(config.dataset)
    levels = levels_of(dataset)
    rows: dict[str, dict[str, Any]] = {}
    hits: dict[str, dict[str, dict[str, float]]] = {}
    for name in config.variants:
        eval_config = EvalConfig(**config.user_sample(), method="recgpt", k_tags=config.k, k_items=[10, 30],
                                 concurrency=config.concurrency, context=dict(VARIANTS[name]))
        eval_config, results, store = run_eval(eval_config, home, show_progress)
        summary = summarise(eval_config, results, levels)
        hits[name] = summary.pop("per_user_hits")
        rows[name] = {"overrides": VARIANTS[name], "store": store.name, **{k: v for k, v in summary.items() if k != "method"}}
    first_rows = next(iter(hits.values()), {})
    metrics = list(next(iter(first_rows.values()), {}))
    differences = {name: {m: paired_difference(hits[name], hits[BASELINE], m) for m in metrics}
                   for name in rows if name != BASELINE and BASELINE in hits}
    return {"config": config.model_dump(), "levels": list(levels), "variants": rows, "differences_vs_shipped": differences}


def _fmt(diff: dict[str, float] | None) -> str:
    return "—" if diff is None else f"{diff['difference']:+.3f} ± {diff['standard_error']:.3f}"


def markdown(result: dict[str, Any], model: str) -> str:
    cfg = result["config"]
    k = cfg["k"]
    cat = [f"cat_hr@{k}_{level}" for level in result["levels"]]
    lines = [f"# Decode cuts: V2's completion tokens against quality, {cfg['dataset']} {cfg['split']}", "",
             f"> Model: **{model}**.", "",
             f"{cfg['users']} sampled {cfg['split']} users (seed {cfg['seed']}), the same for every variant; K={k} final tags; "
             f"{cfg['concurrency']} users in flight. Each variant is a `recgpt eval --method recgpt` run with the overrides shown.", "",
             "| variant | overrides | completion/user | prompt/user | calls/user | tags/user | " + " | ".join(cat + ["item_hr@10"])
             + " | wall/user s |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * (len(cat) + 1) + "---:|"]
    for name, row in result["variants"].items():
        overrides = ", ".join(f"{k2}={v}" for k2, v in row["overrides"].items())
        lines.append(f"| {name} | {overrides} | {row.get('completion_tokens_per_user', 0):.0f} | {row.get('prompt_tokens_per_user', 0):.0f} | "
                     f"{row.get('llm_calls_per_user', 0):.2f} | {row.get('tags_per_user', 0):.1f} | " + " | ".join(f"{row['metrics'].get(m, 0):.3f}" for m in cat + ["item_hr@10"])
                     + f" | {row.get('wall_s_per_user', 0):.1f} |")
    base = result["variants"].get(BASELINE, {})
    lines += ["", f"## Against `{BASELINE}` (paired per user: difference ± standard error)", "",
              "| variant | completion tokens saved | " + " | ".join(cat + ["item_hr@10"]) + " |",
              "|---|---:|" + "---:|" * (len(cat) + 1)]
    for name, diffs in result["differences_vs_shipped"].items():
        row = result["variants"][name]
        saved = base.get("completion_tokens_per_user", 0) - row.get("completion_tokens_per_user", 0)
        share = saved / base["completion_tokens_per_user"] if base.get("completion_tokens_per_user") else 0.0
        lines.append(f"| {name} | {saved:.0f} ({share:.0%}) | " + " | ".join(_fmt(diffs.get(m)) for m in cat + ["item_hr@10"]) + " |")
    lines += ["", "A cut is kept when it saves tokens and no quality difference is beyond about two standard errors below zero.",
              "", "## Reproduce", "", "    recgpt serve --background    # with --policy base when the model above is the untrained one",
              f"    recgpt bench-decode --dataset {cfg['dataset']} --split {cfg['split']} --users {cfg['users']} --seed {cfg['seed']} "
              f"--tags {k} --concurrency {cfg['concurrency']}", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Any) -> Any:
    if not result["variants"]:
        return None
    k = result["config"]["k"]
    names = list(result["variants"])
    cat = f"cat_hr@{k}_{result['levels'][0]}"
    with plots.figure(path, 1, 2, size=(10, 3.8)) as (_, (left, right)):
        left.bar(names, [result["variants"][n].get("completion_tokens_per_user", 0) for n in names], color="tab:blue")
        left.set_title("completion tokens per user")
        right.bar(names, [result["variants"][n]["metrics"].get(cat, 0) for n in names], color="tab:green")
        right.set_title(cat)
        for ax in (left, right):
            ax.tick_params(axis="x", rotation=20)
    return path
