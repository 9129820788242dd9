"""`recgpt eval-retrieval`, `eval-explain`, `bench`, `bench-models`, `bench-decode`, `bench-grounding`, `load`: the
measurements beside `recgpt eval` that write reports. Each one's options are its config's fields (`recgpt/eval/*`).

They live apart from `recgpt eval` because most of their configs' modules import the SASRec stack (torch), which
`recgpt eval --help` should not pay for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from recgpt.cli.common import console
from recgpt.cli.options import CONTEXT_KNOBS, DATASET, REPORTS, Opt, options_from, parse_pairs
from recgpt.cli.served import policy_identity, warn_policy_domain
from recgpt.errors import RecGPTError
from recgpt.eval.bench import BenchConfig, pipelines_for, run_bench, write_bench_report
from recgpt.eval.decode_cuts import VARIANTS, DecodeCutsConfig, markdown, plot, run_decode_cuts
from recgpt.eval.explain_judge import ExplainJudgeConfig, run_explain_judge, write_report
from recgpt.eval.grounding_cost import GroundingCostConfig, run_grounding_cost, write_grounding_cost_report
from recgpt.eval.load import LoadConfig, run_load, write_load_report
from recgpt.eval.model_bench import ModelBenchConfig, run_model_bench, write_model_bench_report
from recgpt.eval.readability_report import ReadabilityConfig, reaudit, run_readability, write_readability_report
from recgpt.eval.report import model_label, report_slug, write_report_files
from recgpt.eval.retrieval_eval import SOURCES, RetrievalEvalConfig, run_retrieval_eval, write_retrieval_report
from recgpt.eval.runs import EvalConfig, recgpt_context
from recgpt.schema.context import Context
from recgpt.services.endpoints import check_endpoint, served_model_identity
from recgpt.services.resources import endpoints_of
from recgpt.settings import get_settings

app = typer.Typer()
SEED = Opt(help="Seed of the user sample.")
TAGS = Opt(name="tags")


def _report_line(md: Path, png: Path | None) -> None:
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@app.command("eval-retrieval", epilog="Tag sources: history (the user's 10 most frequent history categories), oracle_leaf "
             "(the target's full category path), oracle_l2 (its first two levels). Items per user interleave the per-tag "
             "lists, as `recgpt eval` does. The collaborative model (SASRec on the split's training sequences) is trained "
             "once per split and cached under $RECGPT_HOME/collab.")
@options_from(
    RetrievalEvalConfig, dataset=DATASET, seed=SEED, k_tags=TAGS,
    split=Opt(help="validation (tune beta and depth here) or test (report the chosen pair)."),
    users=Opt(help="Users sampled from the split (the `recgpt eval` sample at this seed)."),
    betas=Opt(help="Semantic weights of the collaborative retriever, each in [0, 1]."),
    depths=Opt(help="Candidate depths per tag and source."),
    sources=Opt(help=f"Tag sources: some of {', '.join(SOURCES)}."))
def eval_retrieval_command(*, config: RetrievalEvalConfig, out: Path = REPORTS) -> None:
    """Retrieval alone, no LLM: item HR@K and cat HR@K of fixed tag sources through Chroma and through the
    collaborative retriever (semantic x SASRec mix) over a beta x depth grid, beside SASRec alone."""
    if any(not 0.0 <= b <= 1.0 for b in config.betas):
        raise RecGPTError(f"--betas must lie within [0, 1] (got {','.join(map(str, config.betas))})")
    if any(d < 1 for d in config.depths):
        raise RecGPTError(f"--depths must be positive (got {','.join(map(str, config.depths))})")
    if any(s not in SOURCES for s in config.sources):
        raise RecGPTError(f"--sources must list some of {', '.join(SOURCES)} (got {','.join(config.sources)})")
    result = run_retrieval_eval(config, get_settings().home)
    md, _, png = write_retrieval_report(result, out)
    best = result["best"]
    if best:
        console.print(f"best on {best['source']} tags: beta {best['beta']:g}, depth {best['depth']}: item HR@10 "
                      f"{best['metrics']['item_hr@10']:.3f}, HR@30 {best['metrics']['item_hr@30']:.3f}; SASRec alone "
                      f"{result['sasrec']['metrics']['item_hr@10']:.3f} / {result['sasrec']['metrics']['item_hr@30']:.3f}")
    _report_line(md, png)


@app.command("eval-explain")
@options_from(
    ExplainJudgeConfig, dataset=DATASET, k_tags=TAGS,
    split=Opt(help="validation (tuning) or test (reports)."),
    seed=Opt(help="Seed of the user sample and of the in-batch shuffle."),
    diversity_items=Opt(help="Items explained for several users each (diversity)."),
    users_per_item=Opt(help="Users per diversity item."),
    injection_samples=Opt(help="Clean explanations re-judged with injected text (x2: in the explanation, in the title)."),
    corruption_samples=Opt(help="Positives that also get one corrupted negative per defect kind (filler, cut word, pasted "
                               "path; prompt echo, broken sentence, title restated, invented fact, another item's title)."),
    diversity_only=Opt(help="Writes explain-diversity-<dataset>-<split>.*."),
    concurrency=Opt(help="LLM calls in flight at once."))
def eval_explain_command(*, config: ExplainJudgeConfig, out: Path = REPORTS) -> None:
    """Explanation diversity (template vs meta-prompting), judge accuracy/F1 (Agent-as-a-Judge vs single call)
    against in-batch-shuffled labels, and the judge's prompt-injection flip rate; resumable."""
    summary = run_explain_judge(config, get_settings().home)
    json_path, md_path, png = write_report(summary, out)
    div, agr = summary["diversity"], summary.get("agreement")
    console.print("diversity " + ", ".join(f"{mode} {d['rouge_l_diversity'] or 0:.3f}" for mode, d in div.items())
                  + ("" if agr is None else f"; explanation judge F1 agent {agr['explanations']['agent']['not_bad_is_positive']['f1']:.3f}"
                     f" vs single {agr['explanations']['single']['not_bad_is_positive']['f1']:.3f}"))
    _report_line(md_path, png)
    if config.phase == "generate":
        console.print(f"next: stop this server, serve the judge model on the same port, then `recgpt eval-explain` with the "
                      f"same options and --phase judge --policy-from {json_path}")


@app.command("judge-choice")
def judge_choice_command(
    report: list[Path] = typer.Option(..., "--report", help="A judged `recgpt eval-explain` report JSON (repeatable; list the cheaper judge first)."),
    out: Path = REPORTS,
) -> None:
    """Choose the judge to trust from measured F1: both judges of every report, ranked by their worse F1 over tags and
    explanations; writes judge-choice.md/.json."""
    from recgpt.eval.judge_choice import choose_judge, markdown, scores_of

    choice = choose_judge([score for path in report for score in scores_of(path)])
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge-choice.json").write_text(choice.model_dump_json(indent=2))
    (out / "judge-choice.md").write_text(markdown(choice))
    console.print(f"chosen judge: {choice.chosen.label} (worse F1 {choice.chosen.worse:.3f}; goal "
                  f"{'met' if choice.meets_goal else 'missed'}); report {out / 'judge-choice.md'}")


@app.command("eval-readability", epilog="Defects (each counted by code over its unit): persona_role_name, "
             "persona_person_name, persona_duplicate, persona_path_focus (personas); tag_filler, tag_cut_or_misspelled, "
             "tag_near_duplicate (final tags); explanation_echo, explanation_unfinished, explanation_adds_nothing "
             "(explanations); item_off_category, item_repeated (shown items).")
@options_from(
    ReadabilityConfig, exclude=("context",), dataset=DATASET, seed=SEED,
    split=Opt(help="validation (tuning) or test (reports)."),
    users=Opt(help="Users sampled from the split (the `recgpt eval` sample at this seed)."))
def eval_readability_command(
    *,
    config: ReadabilityConfig,
    set_: list[str] = typer.Option([], "--set", help="Context override FIELD=VALUE (repeatable), e.g. --set num_personas=3."),
    out: Path = REPORTS,
    reaudit_report: Path | None = typer.Option(None, "--reaudit", help=(
        "A readability report (.json) to count again with today's detectors from its stored outputs, without the LLM "
        "(the other options are read from the report).")),
) -> None:
    """What a shopper reads, checked by code: the share of personas, tags, explanations and shown items with each
    defect, over the whole graph's outputs (explanations on); resumable."""
    if reaudit_report is not None:
        summary = reaudit(reaudit_report)
    else:
        config = config.model_copy(update={"context": parse_pairs(set_, Context)})
        config.ctx()  # a bad override is one line before any LLM call
        summary = run_readability(config, get_settings().home)
    md, _ = write_readability_report(summary, out)
    worst = max((row for row in summary["defects"] if row["rate"] is not None), key=lambda row: row["rate"], default=None)
    if worst:
        console.print(f"{summary['users']} users; worst defect {worst['defect']} {worst['rate']:.1%} of {worst['of']} "
                      f"{worst['unit']}s; users with any defect {summary['users_with_any_defect']:.1%}")
    _report_line(md, None)


@app.command("bench", epilog="Figures: calls/user and sent/user (client usage); computed/user = prompt tokens minus "
             "prefix-cache hits (server /metrics); cache hit rate; completion/user (server); wall/user; users/min per phase; "
             "server e2e/user (queue+prefill+decode summed over the user's requests); LLM-busy/user (time any of the user's "
             "calls was in flight); overhead = wall - LLM-busy (ours); V1 dup rate (candidate tags another route already "
             "proposed); quality = cat HR@K (L2, leaf) and item HR@K as `recgpt eval` computes them.")
@options_from(
    BenchConfig, exclude=("pipelines",), dataset=DATASET, seed=SEED, k_tags=TAGS,
    users=Opt(help="Throughput and tokens are measured on them too."),
    setups=Opt(name="setup", default=["architecture", "paper"], help=(
        "architecture: V1's routes read V2's compressed context; paper: each V1 route re-reads the raw history, as "
        "the paper's whole-system comparison. V2 runs once for both.")))
def bench_command(
    *,
    config: BenchConfig,
    hybrid: bool = typer.Option(False, help="Paper setup: also V2 with hybrid compression (needs `recgpt serve --prompt-embeds` and a trained adaptor)."),
    out: Path = REPORTS,
) -> None:
    """RecGPT-V1 multi-route vs V2 on the same users, server and concurrency: tokens sent and computed (prefix cache),
    completion tokens, users/min serially and at saturation, server time vs our overhead, and tag/item HR@K."""
    config = config.model_copy(update={"pipelines": pipelines_for(config.setups, hybrid)})
    ctx = recgpt_context(EvalConfig(dataset=config.dataset, k_tags=config.k_tags))
    warn_policy_domain(ctx, config.dataset)
    result = asyncio.run(run_bench(config))
    md, _, png = write_bench_report(result, out, policy_identity(ctx))
    for name, r in (result.get("comparisons") or {}).items():
        console.print(f"{name}: {r['candidate']}/{r['baseline']} prefill computed {r['v2_over_v1_prefill_computed']:.2f}, users/min at "
                      f"saturation {r['v2_over_v1_users_per_min_saturated']:.2f}x, {r['candidate']} overhead {r['v2_overhead_share_saturated']:.1%}")
    _report_line(md, png)


@app.command("bench-models")
@options_from(
    ModelBenchConfig, dataset=DATASET,
    models=Opt(default=["qwen2.5-coder-0.5b", "smollm2-135m"], help="(`recgpt model list`)."),
    seed=Opt(help="Seed of the user sample (the `recgpt eval` sample)."),
    port=Opt(help="Port of the server each model gets in turn (must be free)."))
def bench_models_command(*, config: ModelBenchConfig, out: Path = REPORTS) -> None:
    """The registry's models side by side: quality (policy alone, full graph), schema validity, copied tags, tokens,
    users/min at saturation, server start and memory; one server at a time, resumable per user and per model."""
    def done(name: str, figures: dict) -> None:
        g = figures["graph"]
        console.print(f"{name}: full graph cat HR@{config.graph_k} {g['metrics']}, {g['users_per_min']:.2f} users/min")

    result = run_model_bench(config, get_settings().home / "bench-models" / f"{Path(config.dataset).name}-{config.split}", on_model=done)
    md, _, png = write_model_bench_report(result, out)
    console.print(f"default by these data: {result['decision']['chosen']} ({result['decision']['reason']})")
    _report_line(md, png)


@app.command("bench-decode")
@options_from(
    DecodeCutsConfig, dataset=DATASET, seed=SEED, k=TAGS,
    split=Opt(help="validation (choose the cuts here) or test."),
    users=Opt(help="Users sampled from the split (the same for every variant)."),
    concurrency=Opt(help="Users in flight against the LLM server."),
    variants=Opt(help=f"Some of {', '.join(VARIANTS)}, shipped among them (see the report)."))
def bench_decode_command(*, config: DecodeCutsConfig, out: Path = REPORTS) -> None:
    """Cuts of V2's generated text (persona evidence, expert rationales, the arbiter's reason) against quality: completion tokens per
    user and cat/item HR of each variant on the same users, paired differences against the shipped text. Resumable
    (each variant is a `recgpt eval` run); a server must be running (`recgpt serve`)."""
    if any(v not in VARIANTS for v in config.variants) or "shipped" not in config.variants:
        raise RecGPTError(f"--variants must include shipped and name only {', '.join(VARIANTS)} (got {','.join(config.variants)})")
    ctx = recgpt_context(EvalConfig(dataset=config.dataset))
    warn_policy_domain(ctx, config.dataset)
    result = run_decode_cuts(config, get_settings().home)
    md, _, png = write_report_files(out / f"decode-cuts-{report_slug(config.dataset)}-{config.split}", result,
                                    model_label(policy_identity(ctx)), markdown, plot)
    for name, row in result["variants"].items():
        console.print(f"{name}: {row.get('completion_tokens_per_user', 0):.0f} completion tokens/user, "
                      + ", ".join(f"{m} {v:.3f}" for m, v in row["metrics"].items() if m.startswith("cat_hr")))
    _report_line(md, png)


@app.command("bench-grounding")
@options_from(
    GroundingCostConfig, synthetic_sizes=Opt(name="sizes", help="Sizes of synthetic (bring-your-own scale) vocabularies."),
    datasets=Opt(help="Datasets whose leaf vocabularies are measured."),
    repeats=Opt(help="Warm requests per vocabulary (median reported)."))
def bench_grounding_command(*, config: GroundingCostConfig, out: Path = REPORTS) -> None:
    """Grammar-compile and first-token cost of the grounded expert schema as the category vocabulary grows (a server
    must be running: `recgpt serve`)."""
    ctx = Context()
    check_endpoint(ctx)
    endpoint = endpoints_of(ctx).policy
    identity = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
    folder = Path(identity.split("@", 1)[1].split("[", 1)[0]) if "@" in identity else None
    result = run_grounding_cost(config, endpoint.base_url, endpoint.model, folder)
    md, _, png = write_grounding_cost_report(result, identity, out)
    for row in result["rows"]:
        console.print(f"{row['vocabulary']}: {row['categories']} categories, first request {row['first_request_ttft_s']:.2f} s "
                      f"to the first token, warm {row['warm_ttft_s']:.2f} s")
    _report_line(md, png)


@app.command("load")
@options_from(LoadConfig, dataset=DATASET, duration_s=Opt(name="duration"), seed=Opt(help="Seed of the user order."))
@options_from(Context, into="ctx", only=list(CONTEXT_KNOBS), **{**CONTEXT_KNOBS, "explanation_mode": Opt(name="explanations", default="off")})
def load_command(*, config: LoadConfig, ctx: Context, out: Path = REPORTS) -> None:
    """Sustained load: outcomes of every run (ok / flagged / error / unhandled; lost must be 0), latency p50/p95/p99,
    users per minute and client memory over time, written to reports/load-<dataset>.md/.json/.png."""
    check_endpoint(ctx)
    counts: dict[str, int] = {}
    with console.status("load: starting") as status:
        def progress(record) -> None:  # noqa: ANN001
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
            status.update("load: " + ", ".join(f"{key} {value}" for key, value in sorted(counts.items())))

        result = asyncio.run(run_load(config, ctx, progress=progress))
    md, _, png = write_load_report(result, out, policy_identity(ctx))
    lat = result["latency_s"]
    console.print(f"{result['finished']} runs ({result['outcomes']}), lost {result['lost']}, p50 {lat['p50'] or 0:.1f} s, "
                  f"p95 {lat['p95'] or 0:.1f} s; report {md}")
    if result["outcomes"]["unhandled"] or result["lost"]:
        raise RecGPTError(f"load: {result['outcomes']['unhandled']} unhandled exceptions, {result['lost']} lost runs (see {md})")
