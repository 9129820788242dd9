"""Measure an arbiter post-processing switch on validation without asking the LLM again.

A `recgpt eval --method recgpt` store keeps each user's arbiter pool and the arbiter's ranks (`UserResult.pool`).
This script replays the arbiter node's own `finalise` (prior, distinct categories, evidence fill, tidying, distinct
words) twice per user, once under the default `Context` and once with the switches given by `--set`, retrieves the
items through the same retriever, and reports cat/item HR@K and the share of final tags a shopper reads as a
near-duplicate (`eval.readability`'s detector), paired per user (mean ± one standard error).

    .venv/bin/python scripts/arbiter_replay.py --store ~/.cache/recgpt/eval/recgpt-<hash>.jsonl \
        --dataset movielens --split validation --set arbiter_distinct_words=false
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from recgpt.agents.arbiter import finalise
from recgpt.agents.words import known_words, near_duplicates
from recgpt.eval.arbiter_inputs import arbiter_inputs
from recgpt.eval.harness import score_merged
from recgpt.eval.metrics import hit_at_k, interleave
from recgpt.eval.report import paired_difference, per_user_metrics
from recgpt.eval.runs import EvalConfig, ResultStore, levels_of
from recgpt.schema.context import Context
from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.grounding import category_vocabulary
from recgpt.tools.retrieval.protocol import search


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`name=value` pairs of `Context` fields; booleans and numbers parsed by the field's default's type."""
    kinds = {f.name: type(f.default) for f in fields(Context)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in kinds:
            raise SystemExit(f"--set {pair}: Context has no field {name!r}")
        kind = kinds[name]
        out[name] = value.lower() in {"1", "true", "yes", "on"} if kind is bool else kind(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a recgpt eval results file (JSONL) with pools")
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--tags", type=int, default=10, help="final tags per user (the run's K)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], required=True,
                        help="a Context switch of the compared variant, name=value (repeatable)")
    parser.add_argument("--name", default="", help="report stem (default: arbiter-replay-<dataset>-<split>)")
    parser.add_argument("--model", default="", help="the policy that wrote the stored answers, named in the report")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    overrides = parse_overrides(args.overrides)

    registry = default_registry()
    dataset = registry.dataset(args.dataset)
    model = registry.sasrec(dataset, args.split)
    retriever = registry.prepare(dataset, args.split, show_progress=False)
    vocabulary = category_vocabulary(dataset, "leaf")
    known = known_words(dataset)
    levels = levels_of(dataset)
    config = EvalConfig(dataset=args.dataset, split=args.split, k_tags=args.tags, k_items=[10, 30])
    results = [r for r in ResultStore(args.store).load().values() if r.error is None and r.pool]
    if not results:
        raise SystemExit(f"{args.store}: no finished user with a stored pool")
    default = Context(num_tags=args.tags)
    variants = {"default": default, "variant": replace(default, **overrides)}
    rows: dict[str, dict[str, dict[str, float]]] = {v: {} for v in variants}
    for result in results:
        inputs = arbiter_inputs(result, dataset, args.split, model, vocabulary)
        history, shares, pool, chosen, user = inputs.history, inputs.shares, inputs.pool, inputs.chosen, inputs.user
        for name, ctx in variants.items():
            final = finalise(SimpleNamespace(flags=[]), pool, chosen, shares, args.tags, ctx, known)  # type: ignore[arg-type]
            hits = search(retriever, [t.tag for t in final], 30, set(history), user, [t.category for t in final])
            scored = result.model_copy(update={"ranked_items": interleave([[h.item_id for h in lst] for lst in hits], 30),
                                               "ranked_categories": [t.category or "" for t in final]})
            row = {m: v for m, v in per_user_metrics(scored, config, levels).items() if "ndcg" not in m}
            merged = score_merged(dataset, args.split, history, [t.category or "" for t in final], 10)
            row["item_hr@10 (score merge)"] = hit_at_k(merged, result.target_item, 10)
            dup = near_duplicates([t.tag for t in final])
            row["near-duplicate tag share"] = sum(dup) / len(dup) if dup else 0.0
            rows[name][result.user_id] = row
    metrics = list(next(iter(rows["default"].values())))
    means = {v: {m: statistics.fmean(r[m] for r in rows[v].values()) for m in metrics} for v in variants}
    paired = {m: paired_difference(rows["variant"], rows["default"], m) for m in metrics}
    switches = ", ".join(f"`{k}={v}`" for k, v in overrides.items())
    stem = args.out / (args.name or f"arbiter-replay-{Path(args.dataset).name}-{args.split}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"store": args.store.name, "users": len(results), "model": args.model,
                                                     "overrides": overrides, "means": means, "paired": paired}, indent=2))
    lines = [f"# Arbiter replay: {args.dataset}, {args.split} split, {switches}", "",
             f"{len(results)} users of `{args.store.name}` (their stored pools and arbiter ranks; no LLM call"
             + (f"; written by {args.model}" if args.model else "") + "). Each user's final tags are made again by "
             "the arbiter node's own `finalise` under the default `Context` and with " + switches + ", then retrieved "
             "through the same retriever. The difference is paired per user, mean ± one standard error.", "",
             f"| metric | default Context | with {switches} | with − default |", "|---|---:|---:|---:|"]
    for m in metrics:
        d = paired[m]
        lines.append(f"| {m} | {means['default'][m]:.3f} | {means['variant'][m]:.3f} | {d['diff']:+.3f} ± {d['se']:.3f} |")
    lines += ["", "## Reproduce", "",
              f"    .venv/bin/python scripts/arbiter_replay.py --store {args.store} --dataset {args.dataset} "
              f"--split {args.split} --tags {args.tags} " + " ".join(f"--set {p}" for p in args.overrides)
              + (f" --name {args.name}" if args.name else "")]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"report {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
