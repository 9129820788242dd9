"""`recgpt eval-retrieval`: how well tags retrieve the held-out item, through Chroma and through the collaborative
retriever over a beta x depth grid, with no LLM at all.

Why no LLM: whether retrieval can turn a good tag into the right item is a question about the retriever, and an
LLM's tags would mix their own quality into the answer. So the tags come from fixed sources:

- `history`: the user's 10 most frequent history categories (full paths) as tag texts, the `category` baseline's;
- `oracle_leaf`: the held-out target's own full category path as the only tag (the best a leaf-level tag can do);
- `oracle_l2`: its first two category levels as the only tag.

Items per user interleave the per-tag lists (best tag first), as `recgpt eval` does; cat HR@K maps each tag to its
nearest catalogue category (the same for every retriever: the collaborative one delegates it). Tune beta and depth
on `--split validation` (history tags); report the chosen pair on `--split test`. The collaborative model of a split
learns only from that split's training sequences, and its ranking alone (SASRec over the whole catalogue) is
reported beside, as `recgpt eval --method sasrec` computes it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from recgpt import plots
from recgpt.data import Dataset
from recgpt.eval.baselines import history_categories
from recgpt.eval.harness import sample_users
from recgpt.eval.metrics import interleave
from recgpt.eval.report import summarise, write_report_files
from recgpt.eval.runs import EvalConfig, UserResult, UserSample, base_result, categories_of, iter_progress, levels_of
from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.collaborative import CollaborativeRetriever, Embedder, catalogue_vectors
from recgpt.tools.retrieval.protocol import CategoryHit, ItemHit, Retriever, UserSignals
from recgpt.tools.retrieval.sequential import SASRec, model_path, training_threads

SOURCES: tuple[str, ...] = ("history", "oracle_leaf", "oracle_l2")
MODEL_LABEL = "no LLM"
TUNING_SOURCE = "history"


class RetrievalEvalConfig(UserSample):
    """One retrieval evaluation: users of a split, the tag sources and the grid of the collaborative retriever."""

    split: Literal["validation", "test"] = "validation"
    betas: list[float] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0])
    depths: list[int] = Field(default_factory=lambda: [30, 50, 100, 200])
    k_tags: int = Field(default=10, ge=1, description="History categories used as tags, and K of cat HR@K.")
    k_items: list[int] = Field(default_factory=lambda: [10, 30])
    sources: list[str] = Field(default_factory=lambda: list(SOURCES))


def tags_of(source: str, dataset: Dataset, history: list[str], target_item: str, k_tags: int) -> list[str]:
    """The tag texts of one source for one user (the target is used only by the oracle sources, by design)."""
    if source == "history":
        return history_categories(dataset, history)[:k_tags]
    path = dataset.items[target_item].category_path
    if not path:
        return []
    if source == "oracle_leaf":
        return [" > ".join(path)]
    if source == "oracle_l2":
        return [" > ".join(path[:2])]
    raise ValueError(f"unknown tag source {source!r}; use one of {', '.join(SOURCES)}")


class MemoRetriever:
    """The semantic retriever's answers, asked once per (query, exclude) at the deepest depth and sliced: the grid
    asks the same tags for every (beta, depth), and the k best of a deeper exact search are its k best."""

    def __init__(self, inner: Retriever, depth: int) -> None:
        self.inner = inner
        self.depth = depth
        self._items: dict[tuple[str, frozenset[str]], list[ItemHit]] = {}
        self._categories: dict[str, list[CategoryHit]] = {}

    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset(),
                     user: UserSignals | None = None) -> list[list[ItemHit]]:
        key = frozenset(exclude)
        missing = [q for q in dict.fromkeys(queries) if (q, key) not in self._items]
        if missing:
            for query, hits in zip(missing, self.inner.search_items(missing, max(k, self.depth), set(exclude), user)):
                self._items[(query, key)] = hits
        return [self._items[(q, key)][:k] for q in queries]

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
        missing = [q for q in dict.fromkeys(queries) if q not in self._categories]
        if missing:
            self._categories.update(zip(missing, self.inner.nearest_categories(missing, 1)))
        return [self._categories[q][:k] for q in queries]


class MemoModel:
    """The collaborative model's scores of the whole catalogue, computed once per history (the grid asks again)."""

    def __init__(self, model: SASRec) -> None:
        self.model = model
        self._scores: dict[tuple[tuple[str, ...], tuple[str, ...]], list[float]] = {}

    def knows_any(self, history: list[str]) -> bool:
        return self.model.knows_any(history)

    def score(self, history: list[str], item_ids: list[str]) -> list[float]:
        key = (tuple(history), tuple(item_ids))
        if key not in self._scores:
            self._scores = {key: self.model.score(history, item_ids)}  # one history at a time: keep only the last
        return self._scores[key]


class MemoEmbedder:
    """An embedder (MiniLM by default) that embeds each distinct tag text once for all arms."""

    def __init__(self, inner: Embedder | None = None) -> None:
        self.inner = inner
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.inner is None:
            self.inner = default_registry().embedder
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.inner(missing)))
        return np.stack([self._vectors[t] for t in texts])


def _arm_label(beta: float | None, depth: int | None) -> str:
    return "chroma" if beta is None else f"collaborative beta={beta:g} depth={depth}"


def run_retrieval_eval(config: RetrievalEvalConfig, home: Path, show_progress: bool = True, semantic: Retriever | None = None,
                       embedder: Embedder | None = None, hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score every (tag source, retriever arm) on the sampled users; returns the report's content.

    The semantic retriever is Chroma (`home/chroma`) and the embedder MiniLM unless given (the unit tests pass
    fakes); the collaborative model is cached under `home/collab`, with the baseline's hparams unless given.
    Torch (SASRec, MiniLM inside Chroma) runs on the cores other processes leave free: spinning threads on a busy
    core made each small embedding call take 0.5 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    try:
        return _run(config, home, show_progress, semantic, embedder, hparams)
    finally:
        torch.set_num_threads(threads)


def _run(config: RetrievalEvalConfig, home: Path, show_progress: bool, semantic: Retriever | None, embedder: Embedder | None,
         hparams: dict[str, Any] | None) -> dict[str, Any]:
    dataset = default_registry().dataset(config.dataset)
    levels = levels_of(dataset)
    users = sample_users(dataset, config.split, config.users, config.seed)
    k_max = max(config.k_items)
    registry = default_registry()
    base_retriever = semantic or registry.chroma_index(dataset, show_progress=show_progress)
    cache_dir = home / "collab"
    path = model_path(dataset, config.split, cache_dir, hparams)
    had_file = path.is_file()
    started = time.perf_counter()
    model = registry.sasrec(dataset, config.split, show_progress, hparams, cache_dir)
    memo_model = MemoModel(model)
    memo = MemoRetriever(base_retriever, max([*config.depths, k_max]))
    memo_embedder = MemoEmbedder(embedder)
    vectors = catalogue_vectors(dataset, base_retriever, memo_embedder)  # Chroma's own item vectors, shared by every arm
    arms: list[tuple[float | None, int | None]] = [(None, None)] + [(b, d) for d in config.depths for b in config.betas]
    retrievers: dict[tuple[float | None, int | None], Retriever] = {(None, None): base_retriever}
    for beta, depth in arms[1:]:
        assert beta is not None and depth is not None
        retrievers[(beta, depth)] = CollaborativeRetriever(dataset, memo, lambda split: memo_model,  # type: ignore[arg-type,return-value]
                                                           beta=beta, depth=depth, embedder=memo_embedder, item_vectors=vectors)
    results: dict[tuple[str, str], list[UserResult]] = {}
    sasrec_results: list[UserResult] = []
    scoring_started = time.perf_counter()
    for user_id in iter_progress(users, f"retrieval on {len(users)} {config.split} users x {len(arms)} arms", show_progress):
        base, history = base_result(dataset, user_id, config.split, levels)
        signals = UserSignals(user_id=user_id, history_item_ids=tuple(history), split=config.split)
        ranked = model.recommend(history, k_max)
        sasrec_results.append(base.model_copy(update={"ranked_items": ranked, "ranked_categories": categories_of(dataset, ranked, config.k_tags)}))
        for source in config.sources:
            tags = tags_of(source, dataset, history, base.target_item, config.k_tags)
            categories = [c[0].category if c else "" for c in memo.nearest_categories(tags, 1)] if tags else []
            for arm in arms:
                hits = retrievers[arm].search_items(tags, k_max, set(history), signals) if tags else []
                items = interleave([[h.item_id for h in lst] for lst in hits], k_max)
                results.setdefault((source, _arm_label(*arm)), []).append(
                    base.model_copy(update={"ranked_items": items, "ranked_categories": categories, "tags": tags}))
    scoring_s = time.perf_counter() - scoring_started
    eval_config = EvalConfig(**config.user_sample(), method="category", k_tags=config.k_tags, k_items=config.k_items)
    rows: list[dict[str, Any]] = []
    for (source, label), per_user in results.items():
        beta, depth = next(arm for arm in arms if _arm_label(*arm) == label)
        rows.append(_row(source, "chroma" if beta is None else "collaborative", beta, depth,
                         summarise(eval_config, per_user, levels)))
    sasrec_row = _row("-", "sasrec alone", None, None, summarise(eval_config, sasrec_results, levels))
    best = choose(rows, TUNING_SOURCE)
    return {
        "config": config.model_dump(), "dataset_hash": dataset.content_hash(), "levels": list(levels),
        "users_scored": len(users),
        "collaborative_model": {"file": str(path.name), "split": config.split, "hparams": model.hparams,
                                "train_seconds": round(model.train_seconds, 1), "train_threads": model.train_threads,
                                "trained_now": not had_file,
                                "load_or_train_seconds": round(scoring_started - started, 1),
                                "epochs_loss": [round(x, 4) for x in model.losses], "sequences": len(dataset.training_sequences(config.split))},
        "scoring_seconds": round(scoring_s, 1),
        "rows": rows, "sasrec": sasrec_row, "best": best,
        "sasrec_report": _sasrec_report(config),
    }


def _row(source: str, retriever: str, beta: float | None, depth: int | None, summary: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "retriever": retriever, "beta": beta, "depth": depth, "users": summary["users_scored"],
            "metrics": summary["metrics"], "new_interest_users": summary["new_interest_users"],
            "new_interest_metrics": summary["new_interest_metrics"]}


def _rank_key(row: dict[str, Any]) -> tuple[float, ...]:
    m = row["metrics"]
    return (m.get("item_hr@10", 0.0), m.get("item_hr@30", 0.0), m.get("item_ndcg@10", 0.0))


def choose(rows: list[dict[str, Any]], source: str) -> dict[str, Any] | None:
    """The collaborative (beta, depth) with the best item HR@10 on `source` (ties: HR@30, then NDCG@10, then the
    larger beta, i.e. the more semantic mix, then the smaller depth, i.e. the cheaper)."""
    candidates = [r for r in rows if r["source"] == source and r["retriever"] == "collaborative"]
    if not candidates:
        return None
    top = max(candidates, key=lambda r: (*_rank_key(r), r["beta"], -r["depth"]))
    return {"beta": top["beta"], "depth": top["depth"], "source": source, "metrics": top["metrics"]}


def _sasrec_report(config: RetrievalEvalConfig) -> dict[str, Any] | None:
    """`recgpt eval --method sasrec`'s numbers on the same users, where that report exists (reports/)."""
    path = Path("reports") / f"eval-{Path(config.dataset).name}-{config.split}-sasrec.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    key = data.get("comparison_key", {})
    if (key.get("users"), key.get("seed"), key.get("split")) != (config.users, config.seed, config.split):
        return None
    return {"file": str(path), "metrics": data.get("metrics", {})}


def write_retrieval_report(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path | None]:
    config = result["config"]
    stem = out_dir / f"retrieval-{Path(config['dataset']).name}-{config['split']}"
    return write_report_files(stem, result, MODEL_LABEL, _markdown, _plot)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _table(rows: list[dict[str, Any]], names: list[str], best: dict[str, Any] | None, key: str = "metrics") -> list[str]:
    lines = ["| tags | retriever | beta | depth | users | " + " | ".join(names) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        mark = " **(chosen)**" if best and r["retriever"] == "collaborative" and (r["beta"], r["depth"]) == (best["beta"], best["depth"]) else ""
        users = r["users"] if key == "metrics" else r["new_interest_users"]
        lines.append(f"| {r['source']} | {r['retriever']}{mark} | {_fmt(r['beta'])} | {_fmt(r['depth'])} | {users} | "
                     + " | ".join(f"{r[key].get(n, 0.0):.3f}" for n in names) + " |")
    return lines


def _markdown(result: dict[str, Any], model: str) -> str:
    config, best, cm = result["config"], result["best"], result["collaborative_model"]
    names = list(result["sasrec"]["metrics"])
    lines = [f"# Retrieval: {config['dataset']}, {config['split']} split ({model})", "",
             f"Users: {result['users_scored']} sampled with seed {config['seed']} (the `recgpt eval` sample) · dataset hash "
             f"`{result['dataset_hash']}` · model: **{model}** (fixed tag sources, no generation) · K tags = {config['k_tags']} · "
             f"item K = {config['k_items']}.", "",
             "Score of a candidate item for a tag: `beta · semantic + (1 − beta) · collaborative`, each term min-max "
             "normalised within the tag's candidates (the semantic retriever's top `depth` ∪ the `depth` items of the "
             "tag's nearest category with the best collaborative score). semantic = MiniLM cosine similarity of tag and "
             "item text; collaborative = SASRec's next-item logit for the user.", "",
             f"Collaborative model: SASRec on the {cm['sequences']} training sequences of the {cm['split']} split "
             f"(history before that split's held-out target), hparams `{json.dumps(cm['hparams'])}`, trained in "
             f"{cm['train_seconds']:.0f} s on this machine's CPU, {cm['train_threads']} torch thread(s) ({'trained by this run' if cm['trained_now'] else 'loaded from its cache file'} "
             f"`{cm['file']}`). Scoring every arm: {result['scoring_seconds']:.0f} s.", ""]
    if best:
        m = best["metrics"]
        lines += [f"**Best on {best['source']} tags (item HR@10, then HR@30, NDCG@10): beta = {best['beta']:g}, depth = "
                  f"{best['depth']}** — item HR@10 {m.get('item_hr@10', 0):.3f}, HR@30 {m.get('item_hr@30', 0):.3f}."
                  + (" Tune here (validation); report the pair on the test split." if config["split"] == "validation" else
                     " (On the test split this grid is the pair chosen on validation, not a new choice.)"), ""]
    sasrec_lines = [f"| - | SASRec alone (this run's model, whole catalogue) | | | {result['sasrec']['users']} | "
                    + " | ".join(f"{result['sasrec']['metrics'].get(n, 0.0):.3f}" for n in names) + " |"]
    if result.get("sasrec_report"):
        rep = result["sasrec_report"]
        sasrec_lines.append(f"| - | SASRec (`{rep['file']}`) | | | {config['users']} | "
                            + " | ".join(f"{rep['metrics'].get(n, 0.0):.3f}" for n in names) + " |")
    for source in config["sources"]:
        rows = [r for r in result["rows"] if r["source"] == source]
        rows.sort(key=lambda r: (r["retriever"] != "chroma", r["depth"] or 0, r["beta"] or 0))
        lines += [f"## Tags: {source}", ""] + _table(rows, names, best) + sasrec_lines + [""]
    rows = [r for r in result["rows"] if r["retriever"] == "chroma" or (best and (r["beta"], r["depth"]) == (best["beta"], best["depth"]))]
    lines += ["## New-interest slice (target L2 category absent from the history), chroma vs the chosen pair", ""]
    lines += _table(rows, names, best, key="new_interest_metrics")
    lines += [f"| - | SASRec alone | | | {result['sasrec']['new_interest_users']} | "
              + " | ".join(f"{result['sasrec']['new_interest_metrics'].get(n, 0.0):.3f}" for n in names) + " |", ""]
    lines += ["## Definitions", "",
              "- tags `history`: the user's 10 most frequent history categories (full paths); `oracle_leaf`: the held-out "
              "target's full category path, alone; `oracle_l2`: its first two levels, alone (the oracles read the target, "
              "by design: they bound what a perfect tag could retrieve).",
              "- cat HR@K: each tag mapped to its nearest catalogue category (the same for both retrievers); SASRec's from "
              "its ranked items' categories. item HR@K / NDCG@K: the target among the first K items of the interleaved "
              "per-tag lists, history items excluded.", "",
              "## Reproduce", "",
              f"    recgpt eval-retrieval --dataset {config['dataset']} --split {config['split']} --users {config['users']} "
              f"--seed {config['seed']} --betas {','.join(f'{b:g}' for b in config['betas'])} "
              f"--depths {','.join(str(d) for d in config['depths'])}"]
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> Path | None:
    config = result["config"]
    with plots.figure(path, 1, len(config["sources"]), size=(5 * len(config["sources"]), 4), sharey=True) as (_, axes):
        axes_list = axes if hasattr(axes, "__len__") else [axes]
        for ax, source in zip(axes_list, config["sources"]):
            rows = [r for r in result["rows"] if r["source"] == source]
            for depth in config["depths"]:
                line = sorted((r["beta"], r["metrics"].get("item_hr@10", 0.0)) for r in rows if r["depth"] == depth)
                ax.plot([b for b, _ in line], [v for _, v in line], marker="o", label=f"depth {depth}")
            chroma = next((r for r in rows if r["retriever"] == "chroma"), None)
            if chroma:
                ax.axhline(chroma["metrics"].get("item_hr@10", 0.0), color="grey", linestyle="--", label="chroma")
            ax.axhline(result["sasrec"]["metrics"].get("item_hr@10", 0.0), color="black", linestyle=":", label="SASRec alone")
            ax.set_title(f"{source} tags ({config['split']})")
            ax.set_xlabel("beta (weight of the semantic term)")
        axes_list[0].set_ylabel("item HR@10")
        axes_list[0].legend(fontsize=8)
    return path

