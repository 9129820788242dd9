"""Tune `Context.arbiter_prior` on validation without asking the LLM again.

A `recgpt eval --method recgpt` store keeps each user's arbiter pool and the arbiter's ranks (`UserResult.pool`). For
each prior weight this script re-orders the final tags exactly as the arbiter node would (`agents.arbiter.with_prior`,
with the category shares recomputed from the split's SASRec, as the context node computes them), retrieves the
items through the same retriever and scores item HR@K and cat HR@K (and item HR@10 of the score-merged list,
`recgpt eval --merge score`), paired against weight 0 (the arbiter alone).
Writes `reports/arbiter-prior-<dataset>-<split>.{md,json}`.

    .venv/bin/python scripts/arbiter_prior_sweep.py --store ~/.cache/recgpt/eval/recgpt-<hash>.jsonl \
        --dataset office --split validation --tags 10
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from recgpt.agents.arbiter import distinct_categories, fill_from_evidence, with_prior
from recgpt.eval.arbiter_inputs import arbiter_inputs
from recgpt.eval.harness import score_merged
from recgpt.eval.metrics import hit_at_k, interleave
from recgpt.eval.report import difference_cells, paired_difference, per_user_metrics
from recgpt.eval.runs import EvalConfig, ResultStore, levels_of
from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.grounding import category_vocabulary
from recgpt.tools.retrieval.protocol import search

GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
BASE = -1.0  # the stored arbiter alone: what every row is paired against


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a recgpt eval results file (JSONL) with pools")
    parser.add_argument("--dataset", default="office")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--tags", type=int, default=10, help="final tags per user (the run's K)")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--distinct", action="store_true", help=(
        "every row also keeps one final tag per category (Context.arbiter_distinct_categories); differences stay "
        "paired against the stored arbiter alone"))
    parser.add_argument("--fill", action="store_true", help=(
        "with --distinct, every row also fills the places left empty with the evidence's categories not yet named "
        "(Context.arbiter_fill_from_evidence)"))
    parser.add_argument("--weights", default=",".join(str(w) for w in GRID), help="the prior weights to replay (comma list)")
    parser.add_argument("--model", default="", help="the policy that wrote the stored answers, named in the report")
    args = parser.parse_args()
    grid = tuple(float(w) for w in args.weights.split(",") if w.strip())

    registry = default_registry()
    dataset = registry.dataset(args.dataset)
    model = registry.sasrec(dataset, args.split)
    retriever = registry.prepare(dataset, args.split, show_progress=False)
    vocabulary = category_vocabulary(dataset, "leaf")
    labels = {path: label.split(" > ")[-1] for label, path in zip(vocabulary.labels, vocabulary.paths)}
    levels = levels_of(dataset)
    config = EvalConfig(dataset=args.dataset, split=args.split, k_tags=args.tags, k_items=[10, 30, 50])
    results = [r for r in ResultStore(args.store).load().values() if r.error is None and r.pool]
    if not results:
        raise SystemExit(f"{args.store}: no finished user with a stored pool")
    rows: dict[float, dict[str, dict[str, float]]] = {w: {} for w in (BASE, *grid)}
    for result in results:
        inputs = arbiter_inputs(result, dataset, args.split, model, vocabulary)
        history, shares, pool, chosen, user = inputs.history, inputs.shares, inputs.pool, inputs.chosen, inputs.user
        for weight in (BASE, *grid):
            final = with_prior(pool, chosen, shares, args.tags, max(weight, 0.0))
            if args.fill and weight == BASE:  # the reference of a fill sweep: the served arbiter, distinct, unfilled
                final = distinct_categories(pool, final, args.tags, shares)[0]
            if args.distinct and weight != BASE:
                final = distinct_categories(pool, final, args.tags, shares)[0]
                if args.fill:
                    final = fill_from_evidence(final, args.tags, shares, labels)[0]
            hits = search(retriever, [t.tag for t in final], 50, set(history), user, [t.category for t in final])
            scored = result.model_copy(update={"ranked_items": interleave([[h.item_id for h in lst] for lst in hits], 50),
                                               "ranked_categories": [t.category or "" for t in final]})
            row = per_user_metrics(scored, config, levels)
            merged = score_merged(dataset, args.split, history, [t.category or "" for t in final], 10)
            row["item_hr@10 (score merge)"] = hit_at_k(merged, result.target_item, 10)
            rows[weight][result.user_id] = row
    metrics = [m for m in rows[grid[0]][results[0].user_id] if "ndcg" not in m]
    summary = {str(w): {m: statistics.fmean(r[m] for r in rows[w].values()) for m in metrics} for w in grid}
    paired = {str(w): {m: paired_difference(rows[w], rows[BASE], m) for m in metrics} for w in grid if w or args.distinct}
    best = max(grid, key=lambda w: (round(summary[str(w)]["item_hr@10"], 9), -w))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"arbiter-prior-{Path(args.dataset).name}-{args.split}{'-distinct' if args.distinct else ''}{'-fill' if args.fill else ''}"
    against = against_baselines(args.out, args.dataset, args.split, {w: rows[w] for w in grid})
    stem.with_suffix(".json").write_text(json.dumps({"store": args.store.name, "users": len(results), "grid": summary,
                                                     "paired_vs_0": paired, "best_by_item_hr@10": best,
                                                     "paired_vs_baselines": against}, indent=2))
    lines = [f"# Arbiter prior sweep: {args.dataset}, {args.split} split", "",
             f"{len(results)} users of `{args.store.name}` (their stored pools and arbiter ranks; no LLM call"
             + (f"; written by {args.model}" if args.model else "") + "). Each row "
             "re-orders the final tags with `Context.arbiter_prior` = w"
             + (" and keeps one final tag per category (`Context.arbiter_distinct_categories`)" if args.distinct else "")
             + (", the places left empty filled from the evidence (`Context.arbiter_fill_from_evidence`)" if args.fill else "")
             + " and retrieves again; differences are paired against the arbiter alone (w = 0"
             + (", distinct categories, no fill" if args.fill else ", no distinct categories" if args.distinct else "")
             + "), mean ± one standard error.", "",
             "| w | " + " | ".join(metrics) + " |", "|---:|" + "---:|" * len(metrics)]
    for w in grid:
        cells = []
        for m in metrics:
            d = paired.get(str(w), {}).get(m)
            cells.append(f"{summary[str(w)][m]:.3f}" + (f" ({d['diff']:+.3f} ± {d['se']:.3f})" if d else ""))
        lines.append(f"| {w:.1f} | " + " | ".join(cells) + " |")
    lines += ["", f"Best by item HR@10 (ties to the smaller weight): **{best:.1f}**."]
    for baseline, by_weight in against.items():
        lines += ["", f"## Against `{baseline}` (its stored row in `{args.out}`, paired on the same users)", "",
                  "| w | " + " | ".join(COMPARED) + " |", "|---:|" + "---:|" * len(COMPARED)]
        for w, diffs in by_weight.items():
            lines.append(f"| {float(w):.1f} | {difference_cells(diffs, COMPARED)} |")
    lines += ["", "## Reproduce", "",
              f"    .venv/bin/python scripts/arbiter_prior_sweep.py --store {args.store} --dataset {args.dataset} "
              f"--split {args.split} --tags {args.tags} --weights {args.weights}" + (" --distinct" if args.distinct else "")
              + (" --fill" if args.fill else "")]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"best weight {best}; report {stem.with_suffix('.md')}")


COMPARED = ("item_hr@10", "item_hr@10 (score merge)", "item_hr@30", "item_hr@50")
"""The replayed lists read against a baseline's item hits (the score-merged list against the baseline's item HR@10)."""


def against_baselines(out: Path, dataset: str, split: str, rows: dict[float, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Each replayed row paired against SASRec's and `sasrec_categories`' stored eval rows (`eval-<dataset>-<split>-<m>.json`
    in `out`, when there) on the users both scored: the replay is compared with what it must beat, not only with itself."""
    found: dict[str, Any] = {}
    for baseline in ("sasrec", "sasrec_categories"):
        path = out / f"eval-{Path(dataset).name}-{split}-{baseline}.json"
        if not path.is_file():
            continue
        base = json.loads(path.read_text())["per_user_hits"]
        # the score-merged list is read against the baseline's own item HR@10
        renamed = {u: {**r, "item_hr@10 (score merge)": r["item_hr@10"]} for u, r in base.items() if "item_hr@10" in r}
        found[baseline] = {}
        for w, per_user in rows.items():
            found[baseline][str(w)] = {m: d for m in COMPARED if (d := paired_difference(per_user, renamed, m)) is not None}
    return found


if __name__ == "__main__":
    main()
