"""Pair two stored `recgpt eval` rows on the users both scored: what one code change did, with its noise.

The eval table only shows rows of one comparison key (same users, same K); a change measured on a smaller sample, or
by code from another commit, is read here instead. Each row file is a `reports/eval-<dataset>-<split>-<row>.json`
(its `per_user_hits`); the difference is `after - before`, paired per user, ± one standard error.

    .venv/bin/python scripts/paired_rows.py --before before.json --after after.json \
        --title "Readability fixes, Office validation" --out reports/readability-fixes-office-validation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recgpt.eval.metrics import paired_difference
from recgpt.eval.report import model_label

METRICS = ("cat_hr@10_l2", "cat_hr@10_leaf", "item_hr@10", "item_hr@30", "item_hr@50")


def pair(before: dict[str, Any], after: dict[str, Any], metrics: tuple[str, ...] = METRICS) -> dict[str, Any]:
    """Per metric: the users both rows scored, each row's mean on those users, and the paired difference."""
    a, b = after["per_user_hits"], before["per_user_hits"]
    common = [u for u in a if u in b]
    out: dict[str, Any] = {}
    for m in metrics:
        d = paired_difference(a, b, m, common)
        if d is None:
            continue
        out[m] = {"before": sum(b[u][m] for u in common) / len(common), "after": sum(a[u][m] for u in common) / len(common),
                  **d}
    return {"users": len(common), "metrics": out}


def markdown(title: str, result: dict[str, Any], before: dict[str, Any], after: dict[str, Any], notes: str,
             names: tuple[str, str]) -> str:
    lines = [f"# {title}", "",
             f"Before: `{names[0]}` ({before['users_scored']} users), model **{model_label(before['model'])}**. "
             f"After: `{names[1]}` ({after['users_scored']} users), "
             f"model **{model_label(after['model'])}**. Paired on the {result['users']} users both scored; "
             "difference = after − before ± one standard error.", ""]
    if notes:
        lines += [notes, ""]
    lines += ["| metric | before | after | after − before |", "|---|---:|---:|---:|"]
    for m, v in result["metrics"].items():
        lines.append(f"| {m} | {v['before']:.3f} | {v['after']:.3f} | "
                     f"{v['difference']:+.3f} ± {v['standard_error']:.3f} (z {v['z']:+.1f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the eval row JSON before the change")
    parser.add_argument("--after", type=Path, required=True, help="the eval row JSON after the change")
    parser.add_argument("--title", required=True)
    parser.add_argument("--notes", default="", help="a paragraph saying what changed and how each row was made")
    parser.add_argument("--out", type=Path, required=True, help="report stem: writes <out>.md and <out>.json")
    args = parser.parse_args()
    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    result = pair(before, after)
    if not result["metrics"]:
        raise SystemExit("the two rows share fewer than two users: nothing to pair")
    args.out.with_suffix(".md").write_text(markdown(args.title, result, before, after, args.notes,
                                                       (args.before.name, args.after.name)))
    payload = {"title": args.title, "notes": args.notes, "before": {"file": args.before.name, "model": before["model"],
               "context": before.get("context"), "per_user_hits": before["per_user_hits"]},
               "after": {"file": args.after.name, "model": after["model"], "context": after.get("context"),
                         "per_user_hits": after["per_user_hits"]}, **result}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
