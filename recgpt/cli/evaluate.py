"""`recgpt eval`, `eval-explain`, `bench`, `bench-models`, `load`: the measurements that write reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer

from recgpt.cli.common import console, context_overrides, run_context, warn_policy_domain
from recgpt.errors import RecGPTError
from recgpt.settings import get_settings

app = typer.Typer()


@app.command("eval")
def eval_command(
    method: str = typer.Option("recgpt", help=(
        "recgpt (the full graph), expert (the policy alone: one expert call with the training persona), popularity, "
        "category, itemknn, sasrec, or blend (SASRec and recgpt merged under --quota; runs or resumes both).")),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation (tuning) or test (reports)."),
    users: int = typer.Option(200, min=1, help="Users sampled from the split (the same for every method at a seed)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample (and of SASRec)."),
    k: int = typer.Option(10, min=1, help="K tags / categories for tag HR@K (recgpt keeps K final tags)."),
    k_items: str = typer.Option("10,30", help="Comma-separated K values for item HR@K / NDCG@K."),
    concurrency: int = typer.Option(8, min=1, help="Users in flight at once against the LLM server (recgpt)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
    compression: str = typer.Option("text", help="recgpt/expert: text, or hybrid (entity soft tokens; server with --prompt-embeds)."),
    adaptor: Optional[Path] = typer.Option(None, help="Entity adaptor folder for --compression hybrid (default: the served model's)."),
    set_: list[str] = typer.Option([], "--set", help=(
        "recgpt/expert: override a runtime Context field, FIELD=VALUE (repeatable), e.g. --set expert_temperature=0.3. "
        "Tune on --split validation; the override is part of the results key and the report.")),
    quota: str = typer.Option("auto", help=(
        "blend: the LLM channel's share of the K slots, in [0, 1]; auto = tuned on validation (grid 0..1 by item "
        "HR@10), read back from the validation blend report in --out when the split is test.")),
) -> None:
    """Run one method over sampled users, resumably; write its report and the side-by-side comparison."""
    from dataclasses import asdict

    from recgpt.data import load_dataset
    from recgpt.eval.blend import quota_label, tuned_quota
    from recgpt.eval.harness import run_blend, run_eval
    from recgpt.eval.report import report_slug, summarise, write_comparison, write_method_report
    from recgpt.eval.runs import METHODS, EvalConfig, levels_of, recgpt_context

    if method not in METHODS:
        raise RecGPTError(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    try:
        ks = sorted({int(x) for x in k_items.split(",") if x.strip()})
    except ValueError:
        raise RecGPTError(f"--k-items must be comma-separated integers (got {k_items!r})") from None
    if compression not in ("text", "hybrid"):
        raise RecGPTError(f"--compression must be text or hybrid (got {compression!r})")
    context: dict = {}
    if compression == "hybrid":  # text stays out of the context overrides: earlier results keep their keys
        context = {"compression": "hybrid", "adaptor_dir": str(adaptor or "")}
    context.update(context_overrides(set_))
    fixed = _quota(quota) if method == "blend" else None
    if method == "blend" and fixed is None and split == "test":
        fixed = tuned_quota(out, report_slug(dataset))
    config = EvalConfig(dataset=dataset, split=split, users=users, seed=seed, method=method, k_tags=k,  # type: ignore[arg-type]
                        k_items=ks, concurrency=concurrency, context=context, quota=fixed)
    settings = get_settings()
    if method in ("recgpt", "expert", "blend"):
        warn_policy_domain(recgpt_context(config), dataset)
    name = method
    blend_info: dict = {}
    if method == "blend":
        results, store, blend_info = run_blend(config, settings.home)
        name = "blend" if quota == "auto" else quota_label(blend_info["quota"])
        if quota == "auto" and split == "test":
            blend_info["quota_source"] = f"tuned on validation ({out / f'eval-{report_slug(dataset)}-validation-blend.json'})"
    else:
        config, results, store = run_eval(config, settings.home)
    data = load_dataset(dataset)
    summary = summarise(config, results, levels_of(data))
    provenance: dict = {"dataset_hash": data.content_hash()}
    if blend_info:
        provenance["blend"] = blend_info
    if method in ("recgpt", "expert", "blend"):
        from recgpt.services.endpoints import endpoint_of, served_model_identity

        ctx = recgpt_context(config)
        endpoint = endpoint_of(ctx)
        provenance["model"] = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
        provenance["context"] = {k2: v for k2, v in asdict(ctx).items() if k2 not in ("api_key",)}
    write_method_report(config, summary, store, out, provenance, name)
    md_path, _, png = write_comparison(config, out)
    metrics = ", ".join(f"{metric} {value:.3f}" for metric, value in summary["metrics"].items())
    if blend_info:
        console.print(f"blend quota {blend_info['quota']:.2f} ({blend_info['quota_source']})")
    console.print(f"{name}: {summary['users_scored']} users scored ({summary['users_failed']} failed): {metrics}")
    console.print(f"report {md_path}" + (f", plot {png}" if png else "") + f"; per-user results {store}")


def _quota(text: str) -> float | None:
    """`--quota`: None for auto, else a share in [0, 1]."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise RecGPTError(f"--quota must be auto or a number in [0, 1] (got {text!r})") from None
    if not 0.0 <= value <= 1.0:
        raise RecGPTError(f"--quota must be within [0, 1] (got {value})")
    return value


def _numbers(option: str, text: str, kind: type) -> list:  # noqa: ANN001 - int or float
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise RecGPTError(f"{option} must be comma-separated {kind.__name__}s (got {text!r})") from None
    if not values:
        raise RecGPTError(f"{option} needs at least one value")
    return sorted(set(values))


@app.command("eval-retrieval", epilog="Tag sources: history (the user's 10 most frequent history categories), oracle_leaf "
             "(the target's full category path), oracle_l2 (its first two levels). Items per user interleave the per-tag "
             "lists, as `recgpt eval` does. The collaborative model (SASRec on the split's training sequences) is trained "
             "once per split and cached under $RECGPT_HOME/collab.")
def eval_retrieval_command(
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("validation", help="validation (tune beta and depth here) or test (report the chosen pair)."),
    users: int = typer.Option(200, min=1, help="Users sampled from the split (the `recgpt eval` sample at this seed)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample."),
    betas: str = typer.Option("0,0.05,0.1,0.2,0.3,0.4,0.5,0.7,0.9,1", help="Comma-separated semantic weights of the collaborative retriever, each in [0, 1]."),
    depths: str = typer.Option("30,50,100,200", help="Comma-separated candidate depths per tag and source."),
    k: int = typer.Option(10, min=1, help="History categories used as tags, and K of cat HR@K."),
    k_items: str = typer.Option("10,30", help="Comma-separated K values for item HR@K / NDCG@K."),
    sources: str = typer.Option("history,oracle_leaf,oracle_l2", help="Comma-separated tag sources."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Retrieval alone, no LLM: item HR@K and cat HR@K of fixed tag sources through Chroma and through the
    collaborative retriever (semantic x SASRec mix) over a beta x depth grid, beside SASRec alone."""
    from recgpt.eval.retrieval_eval import SOURCES, RetrievalEvalConfig, run_retrieval_eval, write_retrieval_report

    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    beta_values = _numbers("--betas", betas, float)
    if any(not 0.0 <= b <= 1.0 for b in beta_values):
        raise RecGPTError(f"--betas must lie within [0, 1] (got {betas!r})")
    depth_values = _numbers("--depths", depths, int)
    if any(d < 1 for d in depth_values):
        raise RecGPTError(f"--depths must be positive (got {depths!r})")
    chosen = [s.strip() for s in sources.split(",") if s.strip()]
    if not chosen or any(s not in SOURCES for s in chosen):
        raise RecGPTError(f"--sources must list some of {', '.join(SOURCES)} (got {sources!r})")
    config = RetrievalEvalConfig(dataset=dataset, split=split, users=users, seed=seed, betas=beta_values,  # type: ignore[arg-type]
                                 depths=depth_values, k_tags=k, k_items=_numbers("--k-items", k_items, int), sources=chosen)
    result = run_retrieval_eval(config, get_settings().home)
    md, _, png = write_retrieval_report(result, out)
    best = result["best"]
    if best:
        console.print(f"best on {best['source']} tags: beta {best['beta']:g}, depth {best['depth']}: item HR@10 "
                      f"{best['metrics']['item_hr@10']:.3f}, HR@30 {best['metrics']['item_hr@30']:.3f}; SASRec alone "
                      f"{result['sasrec']['metrics']['item_hr@10']:.3f} / {result['sasrec']['metrics']['item_hr@30']:.3f}")
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@app.command("eval-explain")
def eval_explain_command(
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation (tuning) or test (reports)."),
    users: int = typer.Option(100, min=1, help="Users whose explanations are generated and judged."),
    source_users: int = typer.Option(200, min=1, help="Users of the `recgpt eval --method recgpt` run whose tags are judged (run/resumed first)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample and of the in-batch shuffle."),
    k: int = typer.Option(10, min=1, help="K of that recgpt run (tags per user)."),
    diversity_items: int = typer.Option(8, min=1, help="Items explained for several users each (diversity)."),
    users_per_item: int = typer.Option(4, min=1, help="Users per diversity item."),
    injection_samples: int = typer.Option(20, min=0, help="Clean explanations re-judged with injected text (x2: in the explanation, in the title)."),
    diversity_only: bool = typer.Option(False, "--diversity-only", help=(
        "Only the diversity explanations, no judge calls: the cheap check for tuning the style stage on validation "
        "(writes explain-diversity-<dataset>-<split>.*).")),
    concurrency: int = typer.Option(16, min=1, help="LLM calls in flight at once."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Explanation diversity (template vs meta-prompting), judge accuracy/F1 (Agent-as-a-Judge vs single call)
    against in-batch-shuffled labels, and the judge's prompt-injection flip rate; resumable."""
    from recgpt.eval.explain_judge import ExplainJudgeConfig, run_explain_judge, write_report

    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    try:
        config = ExplainJudgeConfig(dataset=dataset, split=split, users=users, source_users=source_users, seed=seed,  # type: ignore[arg-type]
                                    k_tags=k, diversity_items=diversity_items, users_per_item=users_per_item,
                                    injection_samples=injection_samples, diversity_only=diversity_only, concurrency=concurrency)
    except ValueError as exc:
        raise RecGPTError(f"invalid option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
    summary = run_explain_judge(config, get_settings().home)
    json_path, md_path, png = write_report(summary, out)
    div, agr = summary["diversity"], summary.get("agreement")
    console.print("diversity " + ", ".join(f"{mode} {d['rouge_l_diversity'] or 0:.3f}" for mode, d in div.items())
                  + ("" if agr is None else f"; explanation judge F1 agent {agr['explanations']['agent']['not_bad_is_positive']['f1']:.3f}"
                     f" vs single {agr['explanations']['single']['not_bad_is_positive']['f1']:.3f}"))
    console.print(f"report {md_path}" + (f", plot {png}" if png else ""))


@app.command("bench", epilog="Figures: calls/user and sent/user (client usage); computed/user = prompt tokens minus "
             "prefix-cache hits (server /metrics); cache hit rate; completion/user (server); wall/user; users/min per phase; "
             "server e2e/user (queue+prefill+decode summed over the user's requests); LLM-busy/user (time any of the user's "
             "calls was in flight); overhead = wall - LLM-busy (ours); V1 dup rate (candidate tags another route already "
             "proposed); quality = cat HR@K (L2, leaf) and item HR@K as `recgpt eval` computes them.")
def bench_command(
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation or test."),
    users: int = typer.Option(50, min=1, help="Users of the saturated phase (throughput, tokens and quality)."),
    serial_users: int = typer.Option(5, min=0, help="Other users run one at a time (latency; users/min at concurrency 1)."),
    saturation: int = typer.Option(16, min=1, help="Users in flight in the saturated phase."),
    k: int = typer.Option(10, min=1, help="K: final tags per user (both pipelines) and K of cat HR@K."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample."),
    setup: str = typer.Option("architecture,paper", help=(
        "Comma-separated comparisons: architecture (V1's routes read V2's compressed context) and/or paper (each V1 route "
        "re-reads the raw history, as the paper's whole-system comparison). V2 runs once for both.")),
    hybrid: bool = typer.Option(False, help="Paper setup: also V2 with hybrid compression (needs `recgpt serve --prompt-embeds` and a trained adaptor)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """RecGPT-V1 multi-route vs V2 on the same users, server and concurrency: tokens sent and computed (prefix cache),
    completion tokens, users/min serially and at saturation, server time vs our overhead, and tag/item HR@K."""
    import asyncio as _asyncio

    from recgpt.eval.bench import BenchConfig, pipelines_for, run_bench, write_bench_report
    from recgpt.eval.runs import EvalConfig, recgpt_context
    from recgpt.services.endpoints import endpoint_of, served_model_identity

    setups = [p.strip() for p in setup.split(",") if p.strip()]
    if not setups or any(p not in ("architecture", "paper") for p in setups):
        raise RecGPTError(f"--setup must list architecture and/or paper (got {setup!r})")
    chosen = pipelines_for(setups, hybrid)
    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    config = BenchConfig(dataset=dataset, split=split, users=users, serial_users=serial_users, saturation=saturation,  # type: ignore[arg-type]
                         k_tags=k, seed=seed, pipelines=chosen, setups=setups)  # type: ignore[arg-type]
    warn_policy_domain(recgpt_context(EvalConfig(dataset=dataset, k_tags=k)), dataset)
    result = _asyncio.run(run_bench(config))
    endpoint = endpoint_of(recgpt_context(EvalConfig(dataset=dataset, k_tags=k)))
    md, _, png = write_bench_report(result, out, served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key))
    for name, r in (result.get("comparisons") or {}).items():
        console.print(f"{name}: {r['candidate']}/{r['baseline']} prefill computed {r['v2_over_v1_prefill_computed']:.2f}, users/min at "
                      f"saturation {r['v2_over_v1_users_per_min_saturated']:.2f}x, {r['candidate']} overhead {r['v2_overhead_share_saturated']:.1%}")
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@app.command("bench-models")
def bench_models_command(
    models: str = typer.Option("qwen2.5-coder-0.5b,smollm2-135m", help="Comma-separated registry names (`recgpt model list`)."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="validation or test."),
    expert_users: int = typer.Option(200, min=1, help="Users of the policy-alone phase (`eval --method expert`)."),
    expert_k: int = typer.Option(5, min=1, help="Tags of the policy-alone phase."),
    graph_users: int = typer.Option(200, min=1, help="Users of the full-graph phase (`eval --method recgpt`)."),
    graph_k: int = typer.Option(10, min=1, help="Final tags of the full graph."),
    concurrency: int = typer.Option(16, min=1, help="Users in flight (saturation)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample (the `recgpt eval` sample)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port of the server each model gets in turn (must be free)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """The registry's models side by side: quality (policy alone, full graph), schema validity, copied tags, tokens,
    users/min at saturation, server start and memory; one server at a time, resumable per user and per model."""
    from recgpt.eval.model_bench import ModelBenchConfig, run_model_bench, write_model_bench_report

    names = [m.strip() for m in models.split(",") if m.strip()]
    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    if not names:
        raise RecGPTError("--models must name at least one registry model")
    config = ModelBenchConfig(models=names, dataset=dataset, split=split, expert_users=expert_users,  # type: ignore[arg-type]
                              expert_k=expert_k, graph_users=graph_users, graph_k=graph_k, seed=seed,
                              concurrency=concurrency, port=port)

    def done(name: str, figures: dict) -> None:  # noqa: ANN001
        g = figures["graph"]
        console.print(f"{name}: full graph cat HR@{graph_k} {g['metrics']}, {g['users_per_min']:.2f} users/min")

    result = run_model_bench(config, get_settings().home / "bench-models" / f"{Path(dataset).name}-{split}", on_model=done)
    md, _, png = write_model_bench_report(result, out)
    console.print(f"default by these data: {result['decision']['chosen']} ({result['decision']['reason']})")
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@app.command("bench-decode")
def bench_decode_command(
    dataset: str = typer.Option("movielens", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("validation", help="validation (choose the cuts here) or test."),
    users: int = typer.Option(100, min=2, help="Users sampled from the split (the same for every variant)."),
    seed: int = typer.Option(0, min=0, help="Seed of the user sample."),
    k: int = typer.Option(10, min=1, help="Final tags per user and K of cat HR@K."),
    concurrency: int = typer.Option(16, min=1, help="Users in flight against the LLM server."),
    variants: str = typer.Option("shipped,no-evidence,no-rationale,no-reason,all", help="Comma-separated variants (see the report)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Cuts of V2's generated text (persona evidence, expert rationales, the arbiter's reason) against quality: completion tokens per
    user and cat/item HR of each variant on the same users, paired differences against the shipped text. Resumable
    (each variant is a `recgpt eval` run); a server must be running (`recgpt serve`)."""
    from recgpt.eval.decode_cuts import VARIANTS, DecodeCutsConfig, markdown, plot, run_decode_cuts
    from recgpt.eval.report import model_label, report_slug, write_report_files
    from recgpt.eval.runs import EvalConfig, recgpt_context
    from recgpt.services.endpoints import endpoint_of, served_model_identity

    if split not in ("validation", "test"):
        raise RecGPTError(f"--split must be validation or test (got {split!r})")
    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or "shipped" not in names:
        raise RecGPTError(f"--variants must include shipped and name only {', '.join(VARIANTS)} (got {variants!r})")
    config = DecodeCutsConfig(dataset=dataset, split=split, users=users, seed=seed, k=k, concurrency=concurrency,  # type: ignore[arg-type]
                              variants=names)
    warn_policy_domain(recgpt_context(EvalConfig(dataset=dataset)), dataset)
    result = run_decode_cuts(config, get_settings().home)
    endpoint = endpoint_of(recgpt_context(EvalConfig(dataset=dataset)))
    identity = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
    md, _, png = write_report_files(out / f"decode-cuts-{report_slug(dataset)}-{split}", result, model_label(identity), markdown, plot)
    for name, row in result["variants"].items():
        console.print(f"{name}: {row.get('completion_tokens_per_user', 0):.0f} completion tokens/user, "
                      + ", ".join(f"{m} {v:.3f}" for m, v in row["metrics"].items() if m.startswith("cat_hr")))
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@app.command("bench-grounding")
def bench_grounding_command(
    datasets: str = typer.Option("movielens,office", help="Comma-separated datasets whose leaf vocabularies are measured."),
    sizes: str = typer.Option("1000,3000,10000", help="Comma-separated sizes of synthetic (bring-your-own scale) vocabularies."),
    repeats: int = typer.Option(3, min=1, help="Warm requests per vocabulary (median reported)."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Grammar-compile and first-token cost of the grounded expert schema as the category vocabulary grows (a server
    must be running: `recgpt serve`)."""
    from recgpt.eval.grounding_cost import GroundingCostConfig, run_grounding_cost, write_grounding_cost_report
    from recgpt.runner import check_endpoint
    from recgpt.schema.context import Context
    from recgpt.services.endpoints import endpoint_of, served_model_identity

    ctx = Context()
    check_endpoint(ctx)
    endpoint = endpoint_of(ctx)
    identity = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
    folder = Path(identity.split("@", 1)[1].split("[", 1)[0]) if "@" in identity else None
    config = GroundingCostConfig(datasets=[d.strip() for d in datasets.split(",") if d.strip()],
                                 synthetic_sizes=_numbers("--sizes", sizes, int), repeats=repeats)
    result = run_grounding_cost(config, endpoint.base_url, endpoint.model, folder)
    md, _, png = write_grounding_cost_report(result, identity, out)
    for row in result["rows"]:
        console.print(f"{row['vocabulary']}: {row['categories']} categories, first request {row['first_request_ttft_s']:.2f} s "
                      f"to the first token, warm {row['warm_ttft_s']:.2f} s")
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@app.command("load")
def load_command(
    concurrency: int = typer.Option(64, min=1, help="User graphs in flight at once."),
    duration: float = typer.Option(300.0, min=1.0, help="Seconds during which new users start; the runs in flight then finish."),
    dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder."),
    split: str = typer.Option("test", help="full, validation or test."),
    k: Optional[int] = typer.Option(None, help="Personas (default 3)."),
    m: Optional[int] = typer.Option(None, help="Tags per expert (default 4)."),
    n: Optional[int] = typer.Option(None, help="Final tags (default 5)."),
    explanations: str = typer.Option("off", help="meta, template or off."),
    judge: str = typer.Option("off", help="agent, single or off."),
    seed: int = typer.Option(0, min=0, help="Seed of the user order."),
    out: Path = typer.Option(Path("reports"), help="Report folder."),
) -> None:
    """Sustained load: outcomes of every run (ok / flagged / error / unhandled; lost must be 0), latency p50/p95/p99,
    users per minute and client memory over time, written to reports/load-<dataset>.md/.json/.png."""
    from recgpt.eval.load import LoadConfig, run_load, write_load_report
    from recgpt.runner import check_endpoint
    from recgpt.services.endpoints import endpoint_of, served_model_identity

    if split not in ("full", "validation", "test"):
        raise RecGPTError(f"--split must be full, validation or test (got {split!r})")
    try:
        ctx = run_context(k, m, n, explanations, judge)
        config = LoadConfig(dataset=dataset, split=split, concurrency=concurrency, duration_s=duration, seed=seed)  # type: ignore[arg-type]
    except ValueError as exc:
        raise RecGPTError(str(exc).splitlines()[0]) from None
    check_endpoint(ctx)
    counts: dict[str, int] = {}
    with console.status("load: starting") as status:
        def progress(record) -> None:  # noqa: ANN001
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
            status.update("load: " + ", ".join(f"{key} {value}" for key, value in sorted(counts.items())))

        result = asyncio.run(run_load(config, ctx, progress=progress))
    endpoint = endpoint_of(ctx)
    md, _, png = write_load_report(result, out, served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key))
    lat = result["latency_s"]
    console.print(f"{result['finished']} runs ({result['outcomes']}), lost {result['lost']}, p50 {lat['p50'] or 0:.1f} s, "
                  f"p95 {lat['p95'] or 0:.1f} s; report {md}")
    if result["outcomes"]["unhandled"] or result["lost"]:
        raise RecGPTError(f"load: {result['outcomes']['unhandled']} unhandled exceptions, {result['lost']} lost runs (see {md})")
