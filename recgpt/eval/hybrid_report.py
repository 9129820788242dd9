"""Hybrid vs full-text context, measured: tokens per user, server prefill time, self-perception, fidelity.

- **Context tokens** of the shared prefix per sampled test user, the same listed items in both forms
  (text tokens from the served tokenizer; hybrid = text tokens between entities + 1 per entity), and
  the raw one-line-per-interaction history for reference.
- **Prefill time**: the expert prompt of each of `prefill_users` users sent once as text and once as
  prompt embeddings with `max_tokens=1`, one request at a time, alternating; the server's
  end-to-end time (vLLM `/metrics` e2e histogram is per-process, so we time each HTTP request: it
  includes the transfer and decoding of the embedding payload, which is the honest cost).
- **Self-perception** on held-out entities: read from the adaptor's training run.
- **Fidelity**: tag HR@K and item Recall@K of `recgpt eval --method expert` in text and hybrid mode,
  on the users both runs scored.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from recgpt import plots
from recgpt.agents.expert import training_expert_instructions
from recgpt.eval.metrics import paired_difference
from recgpt.services.prefix import recommendation_date, render_prefix
from recgpt.services.resources import default_registry
from recgpt.tools.context.compression import raw_history_text
from recgpt.tools.context.environment import build_environment
from recgpt.tools.context.hybrid import HybridAssembler, encode_tensor


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"median": float("nan"), "p90": float("nan"), "mean": float("nan"), "n": 0}
    return {"median": float(statistics.median(ordered)), "p90": float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]),
            "mean": float(statistics.fmean(ordered)), "n": len(ordered)}


def user_prompts(dataset_name: str, split: str, users: list[str], max_items: int, date: str,
                 category_text: bool = True, anchors: int = 0, category_counts: bool = False) -> list[dict[str, Any]]:
    """Each user's expert prompt (training persona, as `eval --method expert` sends it) in text and hybrid form
    (`category_text`, `anchors`, `category_counts`: Context.hybrid_category_text, .hybrid_anchor_titles and
    .hybrid_category_counts)."""

    dataset = default_registry().dataset(dataset_name)
    rows = []
    for user in users:
        example = dataset.example(user, split)
        has_time = any(e.timestamp is not None for e in example.history)
        env = build_environment(recommendation_date({"date": None if has_time else date}, example.history))  # as `eval` does
        profile = example.user.profile.describe()
        text, compressed = render_prefix(dataset, example.history, profile, env, max_items)
        hybrid, hybrid_history = render_prefix(dataset, example.history, profile, env, max_items, entities=True,
                                               entity_categories=category_text, anchors=anchors,
                                               category_counts=category_counts)
        instructions = training_expert_instructions(5)
        rows.append({"user_id": user, "listed_items": compressed.n_listed_items, "raw": raw_history_text(example.history, dataset.items),
                     "text_history": compressed.text, "hybrid_history": hybrid_history.text,
                     "text": [{"role": "system", "content": text}, {"role": "user", "content": instructions}],
                     "hybrid": [{"role": "system", "content": hybrid}, {"role": "user", "content": instructions}]})
    return rows


def token_stats(rows: list[dict[str, Any]], assembler: HybridAssembler) -> dict[str, Any]:
    tok = assembler.tokenizer
    text = [len(tok(r["text"][0]["content"], add_special_tokens=False)["input_ids"]) for r in rows]
    hybrid = [assembler.count_tokens(r["hybrid"][0]["content"]) for r in rows]
    raw = [len(tok(r["raw"], add_special_tokens=False)["input_ids"]) for r in rows]
    ratios = [h / t for h, t in zip(hybrid, text) if t]
    text_history = [len(tok(r["text_history"], add_special_tokens=False)["input_ids"]) for r in rows]
    hybrid_history = [assembler.count_tokens(r["hybrid_history"]) for r in rows]
    history_ratios = [h / t for h, t in zip(hybrid_history, text_history) if t]
    return {"text_prefix_tokens": _quantiles([float(x) for x in text]), "hybrid_prefix_tokens": _quantiles([float(x) for x in hybrid]),
            "text_history_tokens": _quantiles([float(x) for x in text_history]),
            "hybrid_history_tokens": _quantiles([float(x) for x in hybrid_history]),
            "hybrid_over_text_history": _quantiles(history_ratios),
            "raw_history_tokens": _quantiles([float(x) for x in raw]), "hybrid_over_text": _quantiles(ratios),
            "listed_items": _quantiles([float(r["listed_items"]) for r in rows])}


def _nonced(messages: list[dict[str, str]], nonce: str) -> list[dict[str, str]]:
    return [{**messages[0], "content": f"[request {nonce}]\n" + messages[0]["content"]}, *messages[1:]]


def prefill_timing(rows: list[dict[str, Any]], assembler: HybridAssembler, base_url: str, model: str) -> dict[str, Any]:
    """Sequential max_tokens=1 requests, text then hybrid per user; a warm-up request first. Each prompt starts
    with a unique nonce, so neither form is helped by the prefix cache (e.g. from an eval run just before)."""
    tok = assembler.tokenizer
    url = base_url.rstrip("/") + "/completions"
    out: dict[str, list[float]] = {"text": [], "hybrid": []}
    tokens: dict[str, list[int]] = {"text": [], "hybrid": []}
    with httpx.Client(timeout=300) as client:
        client.post(url, json={"model": model, "prompt": "warm up", "max_tokens": 1})
        for row in rows:
            text_prompt = tok.apply_chat_template(_nonced(row["text"], uuid.uuid4().hex), tokenize=False, add_generation_prompt=True)
            embeds = encode_tensor(assembler.embeds(_nonced(row["hybrid"], uuid.uuid4().hex)).to(assembler.wire_dtype))
            for mode, body in (("text", {"prompt": text_prompt}), ("hybrid", {"prompt_embeds": embeds})):
                started = time.perf_counter()
                response = client.post(url, json={"model": model, "max_tokens": 1, "temperature": 0, **body})
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                out[mode].append(elapsed)
                tokens[mode].append(int(response.json()["usage"]["prompt_tokens"]))
    return {mode: {"seconds": _quantiles(out[mode]), "prompt_tokens": _quantiles([float(t) for t in tokens[mode]])} for mode in out}


def fidelity(text_report: dict[str, Any], hybrid_report: dict[str, Any]) -> dict[str, Any]:
    """Metrics of both eval runs on the users both scored."""
    text_hits, hybrid_hits = text_report["per_user_hits"], hybrid_report["per_user_hits"]
    common = sorted(set(text_hits) & set(hybrid_hits))
    metrics = list(next(iter(text_hits.values())).keys()) if text_hits else []
    table = {m: {"text": statistics.fmean(text_hits[u][m] for u in common) if common else float("nan"),
                 "hybrid": statistics.fmean(hybrid_hits[u][m] for u in common) if common else float("nan")} for m in metrics}
    for name, row in table.items():
        row["retained"] = row["hybrid"] / row["text"] if row["text"] else float("nan")
        paired = paired_difference(hybrid_hits, text_hits, name, common)
        if paired is not None:
            row["difference"], row["standard_error"] = paired["difference"], paired["standard_error"]
    return {"users": len(common), "metrics": table,
            "prompt_tokens_per_user": {"text": text_report.get("prompt_tokens_per_user"), "hybrid": hybrid_report.get("prompt_tokens_per_user")},
            "flagged_users": {"text": text_report.get("flagged_users"), "hybrid": hybrid_report.get("flagged_users")}}


HISTORY_RATIO_GOAL = 0.20  # issue 35: the history section at a fifth of its text tokens or less (median user)
RETENTION_GOAL = 0.95  # hybrid keeps 95% of text's cat HR@K and item HR@10, within one standard error
SELF_PERCEPTION_GOAL = 0.90  # of the full-title ceiling


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 35's bars, each with the measured value and whether it is met. A retention bar is met when the hybrid
    mean plus one standard error of the paired difference reaches 95% of the text mean (the difference is within one
    SE of a 5% loss); metrics: every category HR and item HR@10."""
    rows: list[dict[str, Any]] = []
    hist = result["tokens"].get("hybrid_over_text_history")
    if hist:
        rows.append({"target": f"history section median hybrid/text tokens ≤ {HISTORY_RATIO_GOAL:.2f}",
                     "value": f"{hist['median']:.3f} (p90 {hist['p90']:.3f})", "met": hist["median"] <= HISTORY_RATIO_GOAL})
    for name, row in (result.get("fidelity") or {}).get("metrics", {}).items():
        if not (name.startswith("cat_hr@") or name == "item_hr@10") or "standard_error" not in row:
            continue
        reach = row["hybrid"] + row["standard_error"]
        rows.append({"target": f"{name}: hybrid ≥ {RETENTION_GOAL:.0%} of text within one SE",
                     "value": f"{row['hybrid']:.3f} vs {row['text']:.3f} (retained {row['retained']:.2f}; "
                              f"Δ {row['difference']:+.3f} ± {row['standard_error']:.3f})",
                     "met": reach >= RETENTION_GOAL * row["text"]})
    sp = result.get("self_perception")
    if sp and sp["full_text_title"]["accuracy"]:
        share = sp["trained_adaptor"]["accuracy"] / sp["full_text_title"]["accuracy"]
        rows.append({"target": f"self-perception ≥ {SELF_PERCEPTION_GOAL:.0%} of the full-title ceiling",
                     "value": f"{sp['trained_adaptor']['accuracy']:.3f} / {sp['full_text_title']['accuracy']:.3f} = {share:.2f}",
                     "met": share >= SELF_PERCEPTION_GOAL})
    return rows


def layout_line(config: dict[str, Any]) -> str:
    """The hybrid history's layout in words (older reports recorded only the category-text choice)."""
    parts = ["category paths as text beside each soft token" if config.get("category_text", True)
             else "compact: soft tokens side by side, no category path as text"]
    if config.get("anchor_titles"):
        parts.append(f"the newest {config['anchor_titles']} liked items as quoted titles")
    if config.get("category_counts"):
        parts.append("one line of the whole history's category counts")
    return "Hybrid layout: " + "; ".join(parts) + "."


def markdown(result: dict[str, Any], model: str) -> str:
    t = result["tokens"]
    lines = [f"# Hybrid context compression — {result['config']['dataset']} {result['config']['split']}", "",
             f"Model: `{model}`. Adaptor: `{result['adaptor']['folder']}` (fingerprint {result['adaptor']['fingerprint']}).",
             f"Reproduce: `{result['command']}`", "", layout_line(result["config"]), ""]
    goals = targets(result)
    if goals:
        lines += ["## Targets (issue 35)", "", "| target | measured | met |", "|---|---|:-:|",
                  *[f"| {g['target']} | {g['value']} | {'yes' if g['met'] else '**no**'} |" for g in goals], ""]
    lines += ["## Context tokens per user (shared prefix, same listed items)", "",
             "| form | median | p90 | mean |", "|---|---:|---:|---:|"]
    for name, key in (("history: raw, one line per interaction", "raw_history_tokens"),
                      ("history: text compression (quoted titles)", "text_history_tokens"),
                      ("history: hybrid (1 soft token per title)", "hybrid_history_tokens"),
                      ("whole shared prefix, text (instructions, profile, situation, history)", "text_prefix_tokens"),
                      ("whole shared prefix, hybrid", "hybrid_prefix_tokens")):
        q = t.get(key)
        if q:
            lines.append(f"| {name} | {q['median']:.0f} | {q['p90']:.0f} | {q['mean']:.0f} |")
    hist = t.get("hybrid_over_text_history", t["hybrid_over_text"])
    lines += ["", f"Hybrid/text ratio per user: history section median {hist['median']:.2f} (p90 {hist['p90']:.2f}); whole prefix "
                  f"median {t['hybrid_over_text']['median']:.2f} (p90 {t['hybrid_over_text']['p90']:.2f}) "
                  f"({t['text_prefix_tokens']['n']} users; listed items median {t['listed_items']['median']:.0f}). "
                  "The raw history has no deduplication but also no grouping headers, category paths or time buckets, so "
                  "for short histories it is shorter than the text compression; its p90 shows what compression is for."]
    if result.get("prefill"):
        p = result["prefill"]
        lines += ["", "## Prefill time per request (server, max_tokens=1, one at a time)", "",
                  "| form | prompt tokens (median) | seconds median | p90 |", "|---|---:|---:|---:|"]
        for mode in ("text", "hybrid"):
            lines.append(f"| {mode} | {p[mode]['prompt_tokens']['median']:.0f} | {p[mode]['seconds']['median']:.3f} | {p[mode]['seconds']['p90']:.3f} |")
    sp = result.get("self_perception")
    if sp:
        lines += ["", f"## Self-perception on {sp['trained_adaptor']['n']} held-out entities (leaf category among "
                      f"{round(1 / sp['trained_adaptor']['chance'])} choices, by answer likelihood)", "",
                  "| input | accuracy |", "|---|---:|",
                  f"| chance | {sp['trained_adaptor']['chance']:.3f} |",
                  f"| untrained adaptor | {sp['untrained_adaptor']['accuracy']:.3f} |",
                  f"| trained adaptor (1 soft token) | {sp['trained_adaptor']['accuracy']:.3f} |",
                  f"| full-text title (ceiling) | {sp['full_text_title']['accuracy']:.3f} |"]
    fid = result.get("fidelity")
    if fid:
        lines += ["", f"## Fidelity: `recgpt eval --method expert`, text vs hybrid, same {fid['users']} test users", "",
                  "| metric | text | hybrid | retained | hybrid − text (paired ± SE) |", "|---|---:|---:|---:|---:|"]
        for name, row in fid["metrics"].items():
            paired = f"{row['difference']:+.3f} ± {row['standard_error']:.3f}" if "standard_error" in row else "–"
            lines.append(f"| {name} | {row['text']:.3f} | {row['hybrid']:.3f} | {row['retained']:.2f} | {paired} |")
        lines.append(f"\nPrompt tokens per user: text {fid['prompt_tokens_per_user']['text']}, hybrid {fid['prompt_tokens_per_user']['hybrid']}.")
    if result.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path | None:
    t = result["tokens"]
    with plots.figure(path, size=(6, 3.5), dpi=120) as (_, ax):
        names = ["raw history", "text history", "hybrid history", "text prefix", "hybrid prefix"]
        keys = ["raw_history_tokens", "text_history_tokens", "hybrid_history_tokens", "text_prefix_tokens", "hybrid_prefix_tokens"]
        names = [n for n, k in zip(names, keys) if k in t]
        keys = [k for k in keys if k in t]
        ax.bar(names, [t[k]["median"] for k in keys], color=["#999", "#4477aa", "#ee6677", "#88aadd", "#ffaabb"][: len(keys)], label="median")
        ax.tick_params(axis="x", labelrotation=20)
        ax.scatter(names, [t[k]["p90"] for k in keys], color="black", zorder=3, label="p90")
        ax.set_ylabel("context tokens per user")
        ax.set_title("History context: raw vs text vs hybrid")
        ax.legend()
    return path
