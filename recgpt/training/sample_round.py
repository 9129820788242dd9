"""`recgpt train sample-round`: one offline round of policy improvement that fits two CPU cores.

GRPO samples, scores and steps in one loop, so on CPU a step costs minutes and most of it is generation. An offline
round splits the loop: the *served* policy samples G answers (plus one greedy answer) per training prompt through the
vLLM server, under the exact grammar serving decodes with (`grounded_expert_schema`: the catalogue enum), with the
prompt's prefix cached; every answer is scored with the dense reward; the round writes what a trainer needs:

- `rft.jsonl`: rejection-sampling SFT rows, each prompt's best sample where it beats the greedy answer (TRL
  conversational prompt-completion);
- `dpo-crs.jsonl`, `dpo-sum.jsonl`: best-versus-worst pairs (TRL `DPOTrainer` prompt/chosen/rejected) under each
  shaping, a pair only where the two differ.

The reward (`recgpt.training.rewards`): accuracy is `AccuracyMix.dense()` (category credit at `level` and at the leaf,
and `r_rank` of the cut's held-out next items in the list the served retriever returns for the answer's tags, as the
graph's `interleave` merges them), shaped by CRS (gates) or SUM. The sparse R_acc is scored beside it, so the summary
gives how many groups each leaves without a reward difference (TRL's `frac_reward_zero_std`).

Decisions, written here because they change what is learnt:

- tags are scored as a shopper reads them: `text_fields.tidy_tag`, as the arbiter tidies them before they are shown.
  The paper's 6-11-word length gate then has nothing left to judge (tidied tags are at most `TAG_WORDS` words), so the
  length gate is off (`Gates.len = 0`); R_len is still logged;
- the alignment gate is off (`Gates.align = 0`, R_align = 1): issue 33's judge has not yet been measured above chance,
  and a reward model that ranks at chance would gate at random;
- the prompts are validation-target cuts (`datasets.validation_target_cuts`): the training prefix as context, the
  validation target as the future, users outside every seed-0 validation sample that tuning reads. The validation
  split's statistics (SASRec, next-category counts) never saw that target, so the prompt carries the collaborative
  evidence block exactly as serving computes it (`Context.evidence_categories`), and the retriever that scores `r_rank`
  uses the same statistics. A training-prefix cut would have its own future inside both. Test targets are never read;
- every sample is kept in `samples.jsonl` with the served weights' identity: rerunning resumes; a round drawn from
  other weights refuses to mix in.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recgpt.agents.common import messages
from recgpt.agents.expert import expert_max_tokens, grounded_expert_schema
from recgpt.errors import InvalidModelOutput, RecGPTError
from recgpt.eval.metrics import interleave, path_at_level
from recgpt.eval.runs import KeyedStore, run_jobs
from recgpt.schema.context import Context
from recgpt.services.endpoints import check_endpoint, served_model_identity
from recgpt.services.prefix import evidence_block, user_evidence
from recgpt.services.resources import Resources, endpoints_of, resolve
from recgpt.text_fields import tidy_tag
from recgpt.tools.llm import LLMRequestRejected, acall_structured, chat_model
from recgpt.tools.retrieval.grounding import CategoryVocabulary
from recgpt.tools.retrieval.protocol import UserSignals, search
from recgpt.training.configs import SampleRoundConfig
from recgpt.training.datasets import (
    SERVED_RATIONALE_CHARS,
    TrainingCut,
    expert_prompt,
    future_categories,
    grounding_vocabulary,
    validation_target_cuts,
)
from recgpt.training.grpo_rewards import parse_categories, parse_tags, top_category
from recgpt.training.rewards import (
    AccuracyMix,
    Gates,
    TagRewardParts,
    crs_reward,
    r_acc,
    r_div,
    r_len,
    r_rank,
    sum_reward,
    zero_std_share,
)

ROUND_GATES = Gates(align=0.0, div=0.2, len=0.0)
"""See the module docstring: the alignment and length gates are off, the diversity gate stays."""
SHAPINGS = ("crs", "sum")
SCORING_SPLIT = "validation"
"""The split whose statistics build the evidence and score the rank: learnt from the training prefixes only."""
MODEL_KEY = "served_model"

Ranker = Callable[[TrainingCut, list[str], list[str | None]], list[str]]
"""(cut, tags, each tag's grounded catalogue path or None) -> item ids, best first, as the served retriever lists them."""


@dataclass(frozen=True)
class ScoredAnswer:
    text: str
    tags: list[str]
    categories: list[str | None]
    parts: TagRewardParts

    def reward(self, shaping: str, dense: bool = True) -> float:
        mix = AccuracyMix.dense() if dense else AccuracyMix.sparse()
        return crs_reward(self.parts, ROUND_GATES, mix) if shaping == "crs" else sum_reward(self.parts, mix=mix)


def served_ranker(resources: Resources, depth: int, per_tag: int, split: str = "validation") -> Ranker:
    """The served retrieval for a training cut: each tag's items (inside its grounded category where it has one), the
    cut's history excluded, user-aware scoring from `split`'s statistics, interleaved best tag first to `depth`."""
    def rank(cut: TrainingCut, tags: list[str], paths: list[str | None]) -> list[str]:
        history = tuple(e.item_id for e in cut.context)
        user = UserSignals(user_id=cut.user_id, history_item_ids=history, split=split)
        lists = search(resources.retriever, tags, per_tag, set(history), user, paths)
        return interleave([[hit.item_id for hit in hits] for hits in lists], depth, set(history))

    return rank


def score_answer(text: str, cut: TrainingCut, targets: Sequence[str], vocabulary: CategoryVocabulary | None,
                 level: str, depth: int, rank: Ranker, embed: Callable[[list[str]], Any]) -> ScoredAnswer:
    """Every reward part of one answer for one cut (`targets`: the full category paths of the cut's future)."""
    written = parse_tags(text)
    named = parse_categories(text) if written else []
    named = named if len(named) == len(written) else [None] * len(written)
    paths = [vocabulary.path_of(c) if c and vocabulary is not None else None for c in named]
    tags = [tidy_tag(t) or t for t in written]
    if not tags:
        return ScoredAnswer(text, [], [], TagRewardParts(acc=0.0, align=0.0, div=0.0, len=0.0))
    at_level = [path_at_level(p, level) if p else frozenset() for p in paths]
    at_leaf = [path_at_level(p, "leaf") if p else frozenset() for p in paths]
    target_level = set().union(*(path_at_level(t, level) for t in targets)) if targets else set()
    target_leaf = set().union(*(path_at_level(t, "leaf") for t in targets)) if targets else set()
    ranked = rank(cut, tags, paths)
    parts = TagRewardParts(acc=r_acc(at_level, target_level), align=1.0, div=r_div(embed(tags)), len=r_len(tags),
                           leaf=r_acc(at_leaf, target_leaf), rank=r_rank(ranked, [e.item_id for e in cut.future], depth))
    return ScoredAnswer(text, tags, paths, parts)


def best_and_worst(answers: Sequence[ScoredAnswer], shaping: str) -> tuple[ScoredAnswer, ScoredAnswer] | None:
    """The group's best and worst answer under `shaping` (dense), or None when they score alike (no preference)."""
    if len(answers) < 2:
        return None
    ordered = sorted(answers, key=lambda a: a.reward(shaping), reverse=True)
    best, worst = ordered[0], ordered[-1]
    return (best, worst) if best.reward(shaping) > worst.reward(shaping) + 1e-12 else None


def collapse_share(answers: Sequence[ScoredAnswer]) -> tuple[str | None, float]:
    """The category named by the most answers and the share of answers naming it: a round whose chosen answers all
    name one category would teach the collapse both GRPO runs ended in."""
    return top_category([frozenset(filter(None, a.categories)) for a in answers])


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def round_files(prompts: dict[str, list[dict[str, str]]], greedy: dict[str, ScoredAnswer],
                groups: dict[str, list[ScoredAnswer]]) -> dict[str, list[dict[str, Any]]]:
    """The trainer files' rows: RFT (best sample beats greedy under dense CRS) and DPO pairs per shaping."""
    rows: dict[str, list[dict[str, Any]]] = {"rft": [], "dpo-crs": [], "dpo-sum": []}
    for user, answers in groups.items():
        if not answers:
            continue
        best = max(answers, key=lambda a: a.reward("crs"))
        if user in greedy and best.reward("crs") > greedy[user].reward("crs") + 1e-12:
            rows["rft"].append({"prompt": prompts[user], "completion": _assistant(best.text)})  # `train sft --rows-file`
        for shaping in SHAPINGS:
            pair = best_and_worst([*answers, *([greedy[user]] if user in greedy else [])], shaping)
            if pair is not None:
                rows[f"dpo-{shaping}"].append({"prompt": prompts[user], "chosen": _assistant(pair[0].text),
                                               "rejected": _assistant(pair[1].text), "user_id": user})
    return rows


def summarise(groups: dict[str, list[ScoredAnswer]], greedy: dict[str, ScoredAnswer],
              rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Zero-std shares (sparse vs dense, per shaping), mean rewards, greedy vs best, and the collapse monitor."""
    sampled = [a for answers in groups.values() for a in answers]
    out: dict[str, Any] = {"prompts": len(groups), "answers": len(sampled), "zero_std_share": {}, "mean_reward": {}}
    for shaping in SHAPINGS:
        for dense in (False, True):
            name = f"{shaping}-{'dense' if dense else 'sparse'}"
            out["zero_std_share"][name] = zero_std_share([[a.reward(shaping, dense) for a in g] for g in groups.values()])
            out["mean_reward"][name] = sum(a.reward(shaping, dense) for a in sampled) / len(sampled) if sampled else 0.0
            out["mean_reward"][f"greedy-{name}"] = (sum(g.reward(shaping, dense) for g in greedy.values()) / len(greedy)
                                                    if greedy else 0.0)
    out["mean_parts"] = {k: sum(getattr(a.parts, k) for a in sampled) / len(sampled) if sampled else 0.0
                         for k in ("acc", "leaf", "rank", "div", "len")}
    out["rows"] = {name: len(r) for name, r in rows.items() if name != "prompts"}
    chosen = [max(g, key=lambda a: a.reward("crs")) for g in groups.values() if g]
    top, share = collapse_share(chosen)
    sample_top, sample_share = collapse_share(sampled)
    out["collapse"] = {"chosen_top_category": top, "chosen_top_share": share,
                       "sampled_top_category": sample_top, "sampled_top_share": sample_share}
    return out


def round_answers(users: Sequence[str] | dict[str, Any], samples: int) -> dict[str, tuple[str, bool]]:
    """Every answer a round needs, by store key -> (user, greedy?): each prompt's greedy answer, then its `samples`
    sampled ones."""
    keys = {f"greedy:{u}": (u, True) for u in users}
    return keys | {f"sample:{u}:{i}": (u, False) for u in users for i in range(samples)}


_MTIME = re.compile(r"(:\d+):\d+(?=[,\]])")


def without_mtimes(identity: str) -> str:
    """A served-weights identity (`name@folder[file:size:mtime,...]`) without the files' mtimes: the same merged
    policy exported again on a fresh machine (same folder, same sizes) is the same policy."""
    return _MTIME.sub(r"\1", identity)


def claim_round(store: KeyedStore, model: str) -> None:
    """Tie the round's store to the served weights that draw it: a resumed round (its `samples.jsonl` in the machine-local
    run folder) draws its missing answers from those weights only, since answers drawn from two
    policies would make its pairs off-policy for the DPO reference."""
    drawn = store.values.get(MODEL_KEY)
    if drawn is not None and without_mtimes(drawn) != without_mtimes(model):
        raise RecGPTError(f"{store.path} holds samples drawn from {drawn}; the server now serves {model}: "
                          "serve those weights to resume it, or give this round another --out")
    if drawn is None:
        store.put(MODEL_KEY, model)


async def _sample(config: SampleRoundConfig, ctx: Context, prompts: dict[str, list[dict[str, str]]],
                  vocabulary: CategoryVocabulary | None, store: KeyedStore, show_progress: bool) -> None:
    endpoint = endpoints_of(ctx).expert
    m = config.tags_per_expert

    def job(user: str, temperature: float):
        async def run() -> Any:
            model = chat_model(endpoint, temperature, expert_max_tokens(m, vocabulary, SERVED_RATIONALE_CHARS), None)
            msgs = messages(prompts[user][0]["content"], prompts[user][1]["content"])
            try:
                output, _ = await acall_structured(model, msgs, grounded_expert_schema(m, vocabulary, SERVED_RATIONALE_CHARS), "expert",
                                                   endpoint.base_url, ctx.schema_attempts)
            except (InvalidModelOutput, LLMRequestRejected) as exc:  # recorded and counted, the round goes on
                return {"answer": None, "error": str(exc)[:200]}
            return {"answer": output.model_dump_json()}

        return run

    # greedy first, then the samples prompt by prompt: a prompt's G requests run together and share its cached prefix
    jobs = {key: job(user, 0.0 if greedy else config.temperature)
            for key, (user, greedy) in round_answers(prompts, config.samples).items()}
    await run_jobs(store, jobs, "round samples", config.concurrency, show_progress)


def build_sample_round(config: SampleRoundConfig, show_progress: bool = True) -> dict[str, Any]:
    """Sample (resumably), score, write the trainer files and `summary.json`; returns the summary."""
    resources = resolve(config.dataset)
    data = resources.dataset
    cuts = validation_target_cuts(data, config.max_users, config.seed)
    vocabulary = grounding_vocabulary(data, config.grounding)
    ctx = Context(evidence_categories=config.evidence_categories)

    def evidence(cut: TrainingCut) -> str:
        return evidence_block(user_evidence(ctx, resources, SCORING_SPLIT, cut.context)[0])

    prompts = {cut.user_id: expert_prompt(data, cut, config.tags_per_expert, vocabulary=vocabulary, evidence=evidence(cut))
               for cut in cuts}
    config.output.mkdir(parents=True, exist_ok=True)
    store = KeyedStore(config.output / "samples.jsonl")
    wanted = round_answers(prompts, config.samples)
    if any(key not in store for key in wanted):
        check_endpoint(ctx)
        endpoint = endpoints_of(ctx).expert
        claim_round(store, served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key))
        asyncio.run(_sample(config, ctx, prompts, vocabulary, store, show_progress))
    rank = served_ranker(resources, config.depth, config.per_tag, SCORING_SPLIT)
    embed = resources.registry.embedder
    by_user = {cut.user_id: cut for cut in cuts}
    greedy: dict[str, ScoredAnswer] = {}
    groups: dict[str, list[ScoredAnswer]] = {}
    failed = 0
    for user, cut in by_user.items():
        targets = future_categories(data, cut)

        def scored(key: str) -> ScoredAnswer | None:
            answer = (store.values.get(key) or {}).get("answer")
            return score_answer(answer, cut, targets, vocabulary, config.level, config.depth, rank, embed) if answer else None

        first = scored(f"greedy:{user}")
        if first is not None:
            greedy[user] = first
        answers = [scored(f"sample:{user}:{i}") for i in range(config.samples)]
        failed += sum(a is None for a in answers) + (first is None)
        groups[user] = [a for a in answers if a is not None]
    rows = round_files(prompts, greedy, groups)
    rows["prompts"] = [{"user_id": u, "prompt": prompt} for u, prompt in prompts.items()]  # what every answer read
    for name, content in rows.items():
        (config.output / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in content))
    (config.output / "scores.jsonl").write_text("".join(
        json.dumps({"user_id": u, "greedy": asdict(greedy[u].parts) if u in greedy else None,
                    "samples": [asdict(a.parts) for a in g], "categories": [a.categories for a in g]}) + "\n"
        for u, g in groups.items()))
    summary = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
               "served_model": store.values.get(MODEL_KEY), "failed_answers": failed,
               "gates": asdict(ROUND_GATES), "dense_mix": asdict(AccuracyMix.dense()), **summarise(groups, greedy, rows)}
    (config.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
