"""How often a group of sampled answers gets one reward for all (GRPO's zero-advantage groups), under the sparse reward
the collapsed GRPO runs used and under the dense one, scored on answers the policy already wrote: no LLM call.

Reads a reward-groups file (`recgpt train reward-data`, e.g. the chain's `reports/training/chain/reward-groups.jsonl`:
G policy answers per training-prefix cut), scores every policy answer (in-batch shuffled negatives left out) with
`sample_round.score_answer`, and writes `reports/reward-density-<dataset>.{md,json}`.

Caveat, in the report too: these are training-prefix cuts, whose futures the validation statistics (the scorer's
SASRec) were trained on, so r_rank is optimistic here; `recgpt train sample-round` scores validation-target cuts, which
it never saw. Ties are what this measures, and a tie is a tie whatever the scale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from recgpt.eval.report import model_label
from recgpt.services.resources import resolve
from recgpt.training.datasets import future_categories, grounding_vocabulary, training_cuts
from recgpt.training.reward_model import RewardGroup
from recgpt.training.rewards import zero_std_share
from recgpt.training.sample_round import SHAPINGS, score_answer, served_ranker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=Path, default=Path("reports/training/chain/reward-groups.jsonl"))
    parser.add_argument("--dataset", default="office")
    parser.add_argument("--future", type=int, default=3, help="the reward data's --future (its cuts)")
    parser.add_argument("--level", default="l2")
    parser.add_argument("--depth", type=int, default=300)
    parser.add_argument("--model", default="Qwen2.5-Coder-0.5B-Instruct-policy-9b5aaefa (office-sft)",
                        help="the policy that wrote the answers (named in the report)")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    resources = resolve(args.dataset)
    data = resources.dataset
    vocabulary = grounding_vocabulary(data, "leaf")
    cuts = {cut.user_id: cut for cut in training_cuts(data, future=args.future)}
    rank = served_ranker(resources, args.depth, 60, "validation")
    groups = [RewardGroup.model_validate_json(line) for line in args.groups.read_text().splitlines() if line.strip()]
    rewards: dict[str, list[list[float]]] = {f"{s}-{d}": [] for s in SHAPINGS for d in ("sparse", "dense")}
    parts_seen = {"acc": 0.0, "leaf": 0.0, "rank": 0.0}
    answers = 0
    for group in tqdm(groups, desc="scoring groups", unit="group"):
        cut = cuts.get(group.user_id or "")
        if cut is None:
            continue
        scored = [score_answer(s.text, cut, future_categories(data, cut), vocabulary, args.level, args.depth, rank,
                               resources.registry.embedder) for s in group.samples if s.source == "judge"]
        for shaping in SHAPINGS:
            for dense in (False, True):
                rewards[f"{shaping}-{'dense' if dense else 'sparse'}"].append([a.reward(shaping, dense) for a in scored])
        for a in scored:
            answers += 1
            for key in parts_seen:
                parts_seen[key] += getattr(a.parts, key)
    summary = {"groups_file": str(args.groups), "groups": len(rewards["crs-sparse"]), "answers": answers,
               "model": args.model, "depth": args.depth, "level": args.level,
               "zero_std_share": {k: zero_std_share(v) for k, v in rewards.items()},
               "mean_parts": {k: v / answers if answers else 0.0 for k, v in parts_seen.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"reward-density-{args.dataset}"
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    zero = summary["zero_std_share"]
    lines = [
        f"# Reward density — {args.dataset}", "",
        f"> Answers written by **{model_label(args.model)}**; scored without an LLM call.", "",
        f"{summary['groups']} groups ({answers} policy answers, in-batch negatives left out) from `{args.groups}`: the "
        "answers the chain's reward data sampled (G=4, temperature 1) for training-prefix cuts. A group whose answers all "
        "get one reward gives GRPO zero advantage (TRL's `frac_reward_zero_std`).", "",
        "| shaping | sparse (R_acc at L2 alone) | dense (.25 L2 + .25 leaf + .5 r_rank) |", "|---|---:|---:|",
        f"| CRS (diversity gate) | {zero['crs-sparse']:.3f} | {zero['crs-dense']:.3f} |",
        f"| SUM | {zero['sum-sparse']:.3f} | {zero['sum-dense']:.3f} |", "",
        f"Mean parts per answer: L2 credit {summary['mean_parts']['acc']:.3f}, leaf {summary['mean_parts']['leaf']:.3f}, "
        f"r_rank {summary['mean_parts']['rank']:.3f} (depth {args.depth}).", "",
        "Caveat: the scorer's statistics (the validation split's SASRec and next-category counts) were learnt from the "
        "training prefixes, which hold these cuts' futures, so r_rank is optimistic here; `recgpt train sample-round` "
        "scores validation-target cuts those statistics never saw. Ties are what this table measures.", "",
        f"Reproduce: `python scripts/reward_density.py --groups {args.groups} --dataset {args.dataset}`", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print(f"zero-std groups: CRS {zero['crs-sparse']:.3f} -> {zero['crs-dense']:.3f}, SUM {zero['sum-sparse']:.3f} -> "
          f"{zero['sum-dense']:.3f}; wrote {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
