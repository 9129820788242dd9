"""Compressed context vs raw history, in tokens of the served model's tokenizer.

For sampled users of a split: `raw` = the prompt prefix with the history written out one line
per interaction (title | category path, no dedupe: what a naive prompt sends); `compressed` =
the prefix recgpt actually sends (hierarchical aggregation, bounded listing). Same profile and
environment text in both, so the difference is the history alone.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
from pathlib import Path
from typing import Any

from rich.progress import track

from recgpt.data import Split
from recgpt.prompts.shared import SYSTEM_PREFIX
from recgpt.schema.context import Context
from recgpt.services.resources import default_registry
from recgpt.tools.context.compression import CompressionConfig, compress_history, raw_history_text
from recgpt.tools.context.environment import build_environment
from recgpt.tools.context.tokens import TokenCounter


def _percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = (len(ordered) - 1) * q
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarise(values: list[int]) -> dict[str, float]:
    return {"median": float(statistics.median(values)) if values else 0.0, "p90": _percentile(values, 0.9),
            "mean": float(statistics.fmean(values)) if values else 0.0, "max": float(max(values, default=0))}


def measure(dataset_name: str, users: int, seed: int, split: str, counter: TokenCounter,
            date: dt.date, ctx: Context = Context()) -> dict[str, Any]:
    data = default_registry().dataset(dataset_name)
    pool = data.split_users(split)
    chosen = random.Random(seed).sample(pool, min(users, len(pool)))
    env = build_environment(date, country=ctx.country)
    rows = []
    for user_id in track(chosen, description=f"counting tokens for {len(chosen)} users"):
        example = data.example(user_id, Split(split))
        profile = example.user.profile.describe()
        compressed = compress_history(example.history, data.items, CompressionConfig(max_items=ctx.max_history_items))
        common = {"profile": profile, "environment": env.describe(), "n_events": len(example.history)}
        raw_prefix = SYSTEM_PREFIX.format(history=raw_history_text(example.history, data.items), catalogue="", evidence="", **common)
        compressed_prefix = SYSTEM_PREFIX.format(history=compressed.text, catalogue="", evidence="", **common)
        rows.append({"user_id": user_id, "events": len(example.history), "raw_tokens": counter.count(raw_prefix),
                     "compressed_tokens": counter.count(compressed_prefix), "summarised": compressed.n_summarised_events})
    raw = [r["raw_tokens"] for r in rows]
    comp = [r["compressed_tokens"] for r in rows]
    return {
        "config": {"dataset": dataset_name, "dataset_hash": data.content_hash(), "split": split, "users": len(rows),
                   "seed": seed, "date": date.isoformat(), "max_history_items": ctx.max_history_items,
                   "tokenizer": counter.source},
        "raw": summarise(raw), "compressed": summarise(comp),
        "events": summarise([r["events"] for r in rows]),
        "ratio_median": (statistics.median(comp) / statistics.median(raw)) if raw else None,
        "users_truncated": sum(1 for r in rows if r["summarised"]),
        "rows": rows,
    }


def write_report(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = result["config"]
    stem = f"context-tokens-{cfg['dataset']}-{cfg['split']}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2))
    r, c, e = result["raw"], result["compressed"], result["events"]
    md = f"""# Context tokens: compressed vs raw history ({cfg['dataset']}, {cfg['split']} split)

Users: {cfg['users']} sampled with seed {cfg['seed']} · dataset hash `{cfg['dataset_hash']}` · tokenizer `{cfg['tokenizer']}` ·
environment date {cfg['date']} · `max_history_items={cfg['max_history_items']}`.

Both columns are the whole shared system prefix (instructions, profile, environment, history);
only the history block differs. *Raw* writes one line per interaction (title | category path);
*compressed* is recgpt's hierarchical aggregation (bucket → action → category → deduplicated titles,
older items summarised as category counts).

| tokens per user | median | p90 | mean | max |
|---|---:|---:|---:|---:|
| raw history prefix | {r['median']:.0f} | {r['p90']:.0f} | {r['mean']:.0f} | {r['max']:.0f} |
| compressed prefix | {c['median']:.0f} | {c['p90']:.0f} | {c['mean']:.0f} | {c['max']:.0f} |
| history events | {e['median']:.0f} | {e['p90']:.0f} | {e['mean']:.0f} | {e['max']:.0f} |

Median compressed/raw ratio: **{result['ratio_median']:.3f}**. Users whose older history was summarised: {result['users_truncated']}.

Reading: Office histories are short (5-core, median under 10 events), so most of each prefix is the
fixed instruction/environment text and compression saves little on the median user; the gain
concentrates on the long tail (p90, max), which is what keeps long histories inside the context window.

Reproduce: `recgpt stats context --dataset {cfg['dataset']} --split {cfg['split']} --users {cfg['users']} --seed {cfg['seed']} --date {cfg['date']}`
"""
    md_path.write_text(md)
    return md_path, json_path
