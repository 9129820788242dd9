"""Aggregate per-user results into metrics and write the markdown/JSON/PNG reports."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recgpt import plots
from recgpt.eval.metrics import (
    answer_concentration,
    category_hit_at_k,
    exclusive_recall,
    hit_at_k,
    mean_pairwise_cosine_distance,
    ndcg_at_k,
    path_at_level,
)
from recgpt.eval.metrics import (
    paired_difference as metrics_paired_difference,
)
from recgpt.eval.runs import EvalConfig, UserResult
from recgpt.services.resources import default_registry

DEFINITIONS = """\
- **cat HR@K (level)**: 1 when any of the method's first K categories shares a label with the held-out
  target's category at that level. recgpt's categories are its K final tags' own: the catalogue category each
  grounded tag carries (with grounding off, the tag's nearest category by MiniLM); the classical methods' and the
  blend's are the distinct categories of their ranked items; the category baseline's the user's most frequent
  history categories.
  Levels: Office `l2` = first two path levels, `leaf` = full path; MovieLens `genre`.
- **item HR@K** (= Recall@K with one target) and **NDCG@K**: the target item among the first K items
  ranked over the *full* catalogue (no sampled negatives), history items excluded. recgpt ranks items by
  interleaving its tags' retrieval lists (best tag first; each list from the configured retriever, by default
  `collaborative`: the tag's category and semantic neighbours, ordered by SASRec at beta 0).
- **new-interest slice**: users whose target category (at the first level listed) never occurs in their
  history.
- **exclusive recall** (item HR@K): share of all targets that an LLM row hits and no classical channel
  (popularity, category, itemknn, sasrec; then also sasrec_categories) hits at the same K; and the share of the row's
  hits that are exclusive.
- **tag diversity**: mean pairwise cosine distance of a user's tag embeddings (MiniLM).
- **blend** / **blend@Q**: SASRec's and recgpt's item lists merged under a quota, the LLM channel's share of the
  K slots (deduplicated; `recgpt.eval.blend`); `blend` at the quota tuned on validation, `blend@Q` at a fixed one.
- **`--merge score`** (a recgpt row): the LLM channel's flat list is SASRec's ranking restricted to the items inside
  the final tags' categories, instead of round-robin over the tags' lists; the same stored answers re-ranked.
- **fusion**: weighted reciprocal-rank fusion of the same two lists, `(1 − w)/(60 + rank in SASRec) + w/(60 + rank
  in recgpt)`, w tuned on validation (grid 0..1 by item HR@10) and read back on test.
- **sasrec_categories**: SASRec's next-item probability summed per leaf category, the K largest used as grounded
  tags through the same retriever as recgpt's: a no-LLM row the LLM must beat.
- **a row named `method+variant`** (e.g. `recgpt+evidence`): the method under the runtime Context overrides in its
  reproduce line.
- **paired differences**: per user, the row's hit minus the baseline's on the same users; mean ± one standard error
  (sample sd / sqrt n), z = mean / SE. A variant row (`recgpt+noevidence`, `fusion+score`) is also differenced
  against its own method's row, so the one change it makes is read with its noise.
- **items shown** (recgpt): the items under each final tag that a shopper sees; *inside its tag's category* when
  the item's path is the tag's grounded category or below it.
- **retrieval ceilings** (`oracle_leaf`, `oracle_l2`): the held-out target's own category (full path / first two
  levels) as the one grounded tag, through the same retriever. They read the target, so they are bounds, not
  recommenders: what retrieval makes of a perfect tag. `category` (the user's history categories as grounded tags)
  is the ceiling of tags that only repeat the history. Neither counts as a channel in exclusive recall.
"""


def model_label(identity: str | None) -> str:
    """The weights folder's name from a served-model identity (`name@/path/Folder[files]<dtype>`), else the identity;
    a non-float32 dtype follows in brackets: "Qwen2.5-Coder-0.5B (bfloat16)"."""
    if not identity:
        return "unknown"
    identity, *modules = identity.split("+")  # LoRA modules served beside the base: `+name@/path/adapter[files]`
    if modules:
        adapters = ", ".join(f"{m.split('@', 1)[0]} = {Path(m.split('@', 1)[1].split('[', 1)[0]).name}" for m in modules if "@" in m)
        return f"{model_label(identity)} + LoRA {adapters}"
    dtype = ""
    if identity.endswith(">") and "<" in identity:
        identity, _, dtype = identity[:-1].rpartition("<")
    name = Path(identity.split("@", 1)[1].split("[", 1)[0]).name if "@" in identity else identity
    return f"{name} ({dtype})" if dtype else name


def write_report_files(stem: Path, result: dict[str, Any], model: str, markdown: Callable[[dict[str, Any], str], str],
                       plot: Callable[[dict[str, Any], Path], Path | None]) -> tuple[Path, Path, Path | None]:
    """`<stem>.json` (the result plus the served model), `<stem>.md` and, where a plot can be drawn, `<stem>.png`.

    `plot` is called only where matplotlib is installed (`plots.available()`), so a report's own `plot` need not ask."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({**result, "model": model}, indent=2, default=str))
    md_path = stem.with_suffix(".md")
    md_path.write_text(markdown(result, model))
    return md_path, json_path, plot(result, stem.with_suffix(".png")) if plots.available() else None


def per_user_metrics(result: UserResult, config: EvalConfig, levels: tuple[str, ...]) -> dict[str, float]:
    row: dict[str, float] = {}
    for level in levels:
        ranked = [path_at_level(c, level) for c in result.ranked_categories]
        row[f"cat_hr@{config.k_tags}_{level}"] = category_hit_at_k(ranked, frozenset(result.target_labels[level]), config.k_tags)
    for k in config.k_items:
        row[f"item_hr@{k}"] = hit_at_k(result.ranked_items, result.target_item, k)
        row[f"item_ndcg@{k}"] = ndcg_at_k(result.ranked_items, result.target_item, k)
    return row


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def summarise(config: EvalConfig, results: list[UserResult], levels: tuple[str, ...]) -> dict[str, Any]:
    ok = [r for r in results if r.error is None]
    rows = [per_user_metrics(r, config, levels) for r in ok]
    slice_level = levels[0]
    new = [row for r, row in zip(ok, rows) if r.new_interest.get(slice_level)]
    metrics = {name: _mean([row[name] for row in rows]) for name in (rows[0] if rows else {})}
    slice_metrics = {name: _mean([row[name] for row in new]) for name in (rows[0] if rows else {})}
    summary: dict[str, Any] = {
        "method": config.method, "users_sampled": config.users, "users_scored": len(ok),
        "users_failed": len(results) - len(ok), "new_interest_users": len(new), "slice_level": slice_level,
        "new_interest_user_ids": [r.user_id for r in ok if r.new_interest.get(slice_level)],  # paired slice differences
        "metrics": metrics, "new_interest_metrics": slice_metrics,
        "per_user_hits": {r.user_id: row for r, row in zip(ok, rows)},
        "flagged_users": sum(1 for r in ok if r.flags),
    }
    if config.method in ("recgpt", "expert") and ok:
        summary["tags_per_user"] = _mean([len(r.tags) for r in ok])
        summary["tag_diversity"] = _mean([mean_pairwise_cosine_distance(default_registry().embedder(r.tags)) for r in ok if len(r.tags) > 1])
        summary["answer_concentration"] = answer_concentration([r.ranked_categories for r in ok])
        summary["llm_calls_per_user"] = _mean([r.llm_calls for r in ok])
        summary["prompt_tokens_per_user"] = _mean([r.prompt_tokens for r in ok])
        summary["completion_tokens_per_user"] = _mean([r.completion_tokens for r in ok])
        summary["wall_s_per_user"] = _mean([r.wall_s for r in ok])
    shown = sum(r.shown_items for r in ok)
    if shown:
        summary["shown_items"] = {"items": shown, "in_category_share": sum(r.shown_in_category for r in ok) / shown,
                                  "in_category_or_parent_share": sum(r.shown_in_family for r in ok) / shown,
                                  "repeated_share": sum(r.shown_repeats for r in ok) / shown,
                                  "users_with_a_repeat": sum(1 for r in ok if r.shown_repeats)}
    return summary


def write_method_report(config: EvalConfig, summary: dict[str, Any], store: Path, out_dir: Path,
                        provenance: dict[str, Any], name: str | None = None) -> Path:
    """`eval-<dataset>-<split>-<name>.json`; `name` defaults to the method (a fixed-quota blend: `blend@0.30`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"eval-{_slug(config.dataset)}-{config.split}-{name or config.method}.json"
    payload = {"config": config.model_dump(), "comparison_key": config.comparison_key(), "results_file": str(store.name),
               **provenance, **summary}
    path.write_text(json.dumps(payload, indent=2))
    return path


def concentration_line(concentration: dict[str, Any] | None) -> list[str]:
    """The cross-user sameness of the answers, as one report line (none for reports written before it was measured)."""
    if not concentration:
        return []
    return [f"- categories named over all users: {concentration['distinct_categories']}; the most named, "
            f"`{concentration['top_category']}`, is in {concentration['top_category_user_share']:.0%} of the answers"]


def shown_line(shown: dict[str, Any] | None) -> list[str]:
    """What the shopper saw under the tags, as one report line (none for reports written before it was measured)."""
    if not shown:
        return []
    return [f"- items shown under the tags: {shown['items']}; inside their tag's category {shown['in_category_share']:.1%}, "
            f"inside it or its parent {shown['in_category_or_parent_share']:.1%}; repeated within a user's list "
            f"{shown['repeated_share']:.1%} ({shown['users_with_a_repeat']} users)"]


def _slug(name: str) -> str:
    return Path(name).name if "/" in name else name


report_slug = _slug
"""The dataset's part of a report's file name (a JSONL folder: its last component)."""

METHOD_ORDER: tuple[str, ...] = ("popularity", "category", "itemknn", "sasrec", "sasrec_categories", "recgpt", "expert",
                                 "blend", "fusion", "oracle_leaf", "oracle_l2")
EXCLUSIVE_CHANNELS: tuple[str, ...] = ("popularity", "category", "itemknn", "sasrec")
"""The classical channels of exclusive recall as first reported (3.5% at K=50); `sasrec_categories` is reported as a
further channel beside them."""
BASELINES: tuple[str, ...] = ("sasrec", "sasrec_categories")
"""The rows every other row is differenced against, paired per user."""


def base_method(name: str) -> str:
    """The method of a report's row name: `recgpt+evidence` -> recgpt, `blend@0.30` -> blend."""
    return name.split("+", 1)[0].split("@", 1)[0]


def _row_order(name: str) -> tuple[int, str]:
    method = base_method(name)
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), name)


def paired_difference(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], metric: str,
                      users: list[str] | None = None) -> dict[str, float] | None:
    """`metrics.paired_difference` under the report's keys: the mean of `a − b` over the users both rows scored (or
    `users`, where both scored them), its standard error (sample sd / sqrt n) and z; None with fewer than two."""
    d = metrics_paired_difference(a, b, metric, users)
    return None if d is None else {"diff": d["difference"], "se": d["standard_error"], "z": d["z"], "users": d["users"]}


def _exclusive(config: EvalConfig, reports: dict[str, Any], llm_row: str, channels: list[str], keys: list[str]) -> dict[str, Any]:
    llm = reports[llm_row]["per_user_hits"]
    hits = [reports[m]["per_user_hits"] for m in channels]
    users = [u for u in llm if all(u in ch for ch in hits)]
    out = {}
    for key in keys:
        share, of_hits = exclusive_recall([llm[u][key] > 0 for u in users], [[ch[u][key] > 0 for u in users] for ch in hits])
        out[key] = {"share_of_targets": share, "share_of_llm_hits": of_hits, "users": len(users), "channels": channels}
    return out


def write_comparison(config: EvalConfig, out_dir: Path) -> tuple[Path, Path, Path | None]:
    """Side-by-side table of every row report with the same comparison key (`eval-<dataset>-<split>-<row>.json`, a row
    being a method or a named variant such as `recgpt+evidence`), with paired differences against SASRec and
    `sasrec_categories` and the exclusive recall of every LLM row."""
    stem = f"eval-{_slug(config.dataset)}-{config.split}"
    reports = {}
    for path in sorted(out_dir.glob(f"{stem}-*.json"), key=lambda p: _row_order(p.stem.removeprefix(f"{stem}-"))):
        data = json.loads(path.read_text())
        if data.get("comparison_key") == config.comparison_key() and "per_user_hits" in data:
            reports[path.stem.removeprefix(f"{stem}-")] = data
    if not reports:
        raise FileNotFoundError(f"no method reports for {stem}")
    any_report = next(iter(reports.values()))
    metric_names = list(any_report["metrics"])
    keys = [f"item_hr@{k}" for k in config.k_items] + [metric_names[0]]
    channels = [m for m in EXCLUSIVE_CHANNELS if m in reports]
    exclusive: dict[str, Any] = {}
    for row in (r for r in reports if base_method(r) in ("recgpt", "expert")):
        exclusive[row] = _exclusive(config, reports, row, channels, keys)
        if "sasrec_categories" in reports:
            exclusive[f"{row} (channels + sasrec_categories)"] = _exclusive(
                config, reports, row, [*channels, "sasrec_categories"], keys)
    paired: dict[str, Any] = {}
    compared = [f"item_hr@{min(config.k_items)}", *(m for m in metric_names if m.startswith("cat_hr"))]
    for baseline in (b for b in BASELINES if b in reports):
        base_hits = reports[baseline]["per_user_hits"]
        for row, r in reports.items():
            if row == baseline or base_method(row).startswith("oracle"):
                continue
            for slice_name, users in (("all", None), ("new_interest", r.get("new_interest_user_ids"))):
                for metric in compared:
                    diff = paired_difference(r["per_user_hits"], base_hits, metric, users)
                    if diff is not None:
                        paired.setdefault(baseline, {}).setdefault(row, {}).setdefault(slice_name, {})[metric] = diff
    variants = variant_differences(reports, compared)
    combined = {"comparison_key": config.comparison_key(), "methods": {m: {k: v for k, v in r.items() if k != "per_user_hits"}
                                                                       for m, r in reports.items()},
                "exclusive_recall": exclusive, "paired_differences": paired, "variant_differences": variants}
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(combined, indent=2))
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(_markdown(config, reports, metric_names, exclusive, paired, variants))
    png_path = _plot(out_dir / f"{stem}.png", reports, metric_names)
    return md_path, json_path, png_path


def variant_differences(reports: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """Each named variant (`recgpt+noevidence`, `fusion+score`, `blend@0.30`) paired against the row of its own method
    on the same users, overall and on the new-interest slice: what the variant's one change does, with its noise."""
    out: dict[str, Any] = {}
    for row, r in reports.items():
        method = base_method(row)
        if row == method or method not in reports:
            continue
        slices: dict[str, Any] = {}
        for slice_name, users in (("all", None), ("new_interest", r.get("new_interest_user_ids"))):
            values = {m: d for m in metrics
                      if (d := paired_difference(r["per_user_hits"], reports[method]["per_user_hits"], m, users)) is not None}
            if values:
                slices[slice_name] = values
        if slices:
            out[row] = {"against": method, "slices": slices}
    return out


def difference_cells(values: dict[str, Any], metrics: list[str] | tuple[str, ...]) -> str:
    """Table cells `+d ± se (z ...)` of paired differences, blank where a metric has none."""
    return " | ".join(f"{v['diff']:+.3f} ± {v['se']:.3f} (z {v['z']:+.1f})" if (v := values.get(m)) else "" for m in metrics)


def _markdown(config: EvalConfig, reports: dict[str, Any], metric_names: list[str], exclusive: dict[str, Any],
              paired: dict[str, Any] | None = None, variants: dict[str, Any] | None = None) -> str:
    any_report = next(iter(reports.values()))
    header = "| method | users | " + " | ".join(metric_names) + " |"
    rule = "|---|---:|" + "---:|" * len(metric_names)
    lines = [f"# Evaluation: {config.dataset}, {config.split} split", "",
             f"Users: {config.users} sampled with seed {config.seed} (the same users for every method) · "
             f"dataset hash `{any_report.get('dataset_hash')}` · K tags/categories = {config.k_tags} · item K = {config.k_items}."]
    llm_models = {m: model_label(r.get("model")) for m, r in reports.items() if r.get("model")}
    if llm_models:
        lines += ["", "LLM methods ran on: " + ", ".join(f"{m} on **{label}**" for m, label in llm_models.items())
                  + " (served weights in the cost section below)."]
    lines += ["", "## All users", "", header, rule]
    for method, r in reports.items():
        lines.append(f"| {method} | {r['users_scored']} | " + " | ".join(f"{r['metrics'].get(m, 0):.3f}" for m in metric_names) + " |")
    slice_level = any_report["slice_level"]
    lines += ["", f"## New-interest slice (target {slice_level} category absent from the history)", "", header, rule]
    for method, r in reports.items():
        lines.append(f"| {method} | {r['new_interest_users']} | " + " | ".join(f"{r['new_interest_metrics'].get(m, 0):.3f}" for m in metric_names) + " |")
    for baseline, rows in (paired or {}).items():
        metrics = list(next(iter(next(iter(rows.values())).values())))
        lines += ["", f"## Paired differences against {baseline} (mean ± one standard error over the same users; z)", "",
                  "| row | slice | users | " + " | ".join(metrics) + " |", "|---|---|---:|" + "---:|" * len(metrics)]
        for row, slices in rows.items():
            for slice_name, values in slices.items():
                users = next(iter(values.values()))["users"]
                lines.append(f"| {row} | {slice_name} | {users} | {difference_cells(values, metrics)} |")
    if variants:
        metrics = list(next(iter(next(iter(variants.values()))["slices"].values())))
        lines += ["", "## Paired differences of each variant against its own method (mean ± one standard error; z)", "",
                  "| row | against | slice | users | " + " | ".join(metrics) + " |", "|---|---|---|---:|" + "---:|" * len(metrics)]
        for row, v in variants.items():
            for slice_name, values in v["slices"].items():
                users = next(iter(values.values()))["users"]
                lines.append(f"| {row} | {v['against']} | {slice_name} | {users} | {difference_cells(values, metrics)} |")
    if exclusive:
        lines += ["", "## Exclusive recall of the LLM rows against the classical channels", "",
                  "| row | metric | share of all targets | share of the row's hits | channels |", "|---|---|---:|---:|---|"]
        for row, by_key in exclusive.items():
            for key, e in by_key.items():
                lines.append(f"| {row} | {key} | {e['share_of_targets']:.3f} | {e['share_of_llm_hits']:.3f} | {', '.join(e['channels'])} |")
    for llm_method in (m for m in reports if base_method(m) in ("recgpt", "expert")):
        r = reports[llm_method]
        lines += ["", f"## {llm_method} cost and tags", "",
                  f"- tags per user {r.get('tags_per_user', 0):.2f}, tag diversity {r.get('tag_diversity', 0):.3f}",
                  *concentration_line(r.get("answer_concentration")),
                  f"- LLM calls per user {r.get('llm_calls_per_user', 0):.2f}; prompt tokens {r.get('prompt_tokens_per_user', 0):.0f}, "
                  f"completion tokens {r.get('completion_tokens_per_user', 0):.0f} per user",
                  f"- wall time per user {r.get('wall_s_per_user', 0):.1f} s: latency of one user's graph while other users "
                  f"of the run share the server (the run may span several resumed invocations; not a speed benchmark)",
                  f"- users with a flagged partial result: {r.get('flagged_users', 0)}; failed users: {r.get('users_failed', 0)}",
                  *shown_line(r.get("shown_items")),
                  f"- model `{r.get('model')}`, context `{json.dumps(r.get('context'))}`"]
    lines += ["", "## Definitions", "", DEFINITIONS, "## Reproduce", ""]
    for row, r in reports.items():
        sets = "".join(f" --set {k}={v}" for k, v in sorted((r.get("config", {}).get("context") or {}).items()))
        name = f" --quota {row.split('@', 1)[1]}" if "@" in row else (f" --name {row}" if row != base_method(row) else "")
        merge = " --merge score" if (r.get("config") or {}).get("merge") == "score" else ""
        lines.append(f"    recgpt eval --dataset {config.dataset} --split {config.split} --users {config.users} --seed {config.seed} "
                     f"--tags {config.k_tags} --k-items {','.join(map(str, config.k_items))} --method {base_method(row)}{sets}{merge}{name}")
    return "\n".join(lines) + "\n"


def _plot(path: Path, reports: dict[str, Any], metric_names: list[str]) -> Path | None:
    if not plots.available():
        return None
    methods = list(reports)
    with plots.figure(path, 1, 2, size=(12, 4.5), sharey=True) as (_, axes):
        width = 0.8 / max(1, len(methods))
        for ax, key, title in ((axes[0], "metrics", "all users"), (axes[1], "new_interest_metrics", "new-interest slice")):
            for i, method in enumerate(methods):
                values = [reports[method][key].get(m, 0.0) for m in metric_names]
                ax.bar([x + i * width for x in range(len(metric_names))], values, width, label=method)
            ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(metric_names))])
            ax.set_xticklabels(metric_names, rotation=30, ha="right", fontsize=8)
            ax.set_title(title)
        axes[0].set_ylabel("score")
        axes[0].legend(fontsize=8)
    return path
