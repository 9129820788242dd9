"""Deepen a recgpt results store's ranked items from its stored final tags, without asking the LLM again.

An `recgpt eval --method recgpt` store holds each user's final tags with their grounded categories (the `pool` entries
that carry a rank) and the items retrieved for them to depth max(--k-items). Retrieval is deterministic given those
tags, so a run at a larger depth (exclusive recall at K=50 from a run made at K<=30) needs no LLM call: this script
re-retrieves every user's list at the new depth and writes the store that `recgpt eval --k-items NEW` reads (same
config, same served model). It refuses to write unless every user's new list starts with the stored one, item for item:
the check that retrieval, data and code still give what the run saw.

    python scripts/extend_items.py --store ~/.cache/recgpt/eval/recgpt-<key>.jsonl --split test --users 500 \
        --k-items 10,30 --new-k-items 10,30,50 --model '<served identity, as the report's cost section names it>'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from recgpt.eval.harness import config_hash
from recgpt.eval.metrics import interleave
from recgpt.eval.runs import EvalConfig, ResultStore
from recgpt.services.resources import default_registry, resolve
from recgpt.tools.retrieval.protocol import UserSignals, search


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--dataset", default="office")
    parser.add_argument("--split", default="test")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--k-items", default="10,30", help="the store's K values")
    parser.add_argument("--new-k-items", default="10,30,50")
    parser.add_argument("--model", required=True, help="the served identity the store was made with")
    args = parser.parse_args()
    old_k = [int(k) for k in args.k_items.split(",")]
    new_k = [int(k) for k in args.new_k_items.split(",")]
    dataset = default_registry().dataset(args.dataset)
    old = EvalConfig(dataset=args.dataset, split=args.split, users=args.users, method="recgpt", k_tags=args.tags, k_items=old_k)
    new = old.model_copy(update={"k_items": new_k})
    if config_hash(old, dataset, args.model) != args.store.stem.removeprefix("recgpt-"):
        print(f"error: {args.store.name} is not the store of this config and model (key {config_hash(old, dataset, args.model)})",
              file=sys.stderr)
        return 2
    target = args.store.with_name(f"recgpt-{config_hash(new, dataset, args.model)}.jsonl")
    index = resolve(dataset).retriever
    lines, mismatched = [], []
    results = ResultStore(args.store).load()
    for result in tqdm(results.values(), desc="re-retrieving", unit="user"):
        if result.error is None and result.tags:
            final = sorted((p for p in result.pool if p.get("rank") is not None), key=lambda p: p["rank"])
            tags, categories = [p["tag"] for p in final], [p.get("category") for p in final]
            if tags != result.tags:
                mismatched.append(f"{result.user_id}: the pool's final tags differ from the stored tags")
                continue
            history = [e.item_id for e in dataset.example(result.user_id, args.split).history]
            user = UserSignals(user_id=result.user_id, history_item_ids=tuple(history), split=args.split)
            hits = search(index, tags, max(new_k), set(history), user, categories)
            items = interleave([[h.item_id for h in lst] for lst in hits], max(new_k))
            if items[: len(result.ranked_items)] != result.ranked_items:
                mismatched.append(f"{result.user_id}: the deeper list does not start with the stored one")
                continue
            result = result.model_copy(update={"ranked_items": items})
        lines.append(result.model_dump_json() + "\n")
    if mismatched:
        print(f"error: {len(mismatched)} of {len(results)} users do not reproduce, e.g. {mismatched[0]}; nothing written",
              file=sys.stderr)
        return 1
    target.write_text("".join(lines))
    print(f"{len(lines)} users re-retrieved to depth {max(new_k)}: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
