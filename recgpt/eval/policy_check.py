"""The policy-alone check that chooses what a dataset with no policy of its own is served.

Each candidate (the untrained base, and every policy shipped for the same base on another dataset) is served in turn,
never two servers at once, and asked the Distributed Expert's prompt for the dataset's validation users
(`recgpt eval --method expert`: one call per user, resumable like every eval). The best by category HR@10 is
served (`policy_choice.pick`), and the record is kept so the check runs once per (base, dataset content).
Validation users only: test stays for the reports.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console

from recgpt.eval.metrics import answer_concentration
from recgpt.eval.report import summarise
from recgpt.eval.runs import EvalConfig, levels_of
from recgpt.services.resources import default_registry
from recgpt.tools.serving.model_prep import prepare_model
from recgpt.tools.serving.policy import POLICIES_DIR, dataset_key, load_card, prepare_policy, shipped_policies
from recgpt.tools.serving.policy_choice import BASE, CandidateScore, PolicyChoice, load_choice, pick, save_choice
from recgpt.tools.serving.server import ServerConfig, start_server

CHECK_USERS = 50
"""Validation users per candidate: ~4 min of the 0.5B model each on 2 CPU cores; enough to tell .68 from .48 (the
MovieLens gap that motivated the check), not a .03 difference. `--check-users` raises it."""

Serve = Callable[[Path], AbstractContextManager[None]]


@contextmanager
def vllm_serving(folder: Path, port: int, run_dir: Path) -> Iterator[None]:
    """One candidate's server for the length of its measurement (stopped before the next starts)."""
    handle = start_server(ServerConfig(model_dir=folder, port=port), run_dir)
    try:
        yield
    finally:
        handle.stop()


def measure_candidate(candidate: str, policy: str, dataset: str, users: int, home: Path,
                      show_progress: bool = True) -> CandidateScore:
    """The served policy alone on `users` validation users of `dataset` (the endpoint of the default Context)."""
    from recgpt.eval.harness import run_eval  # deferred: torch (the retriever's SASRec)

    config = EvalConfig(method="expert", dataset=dataset, split="validation", users=users, seed=0, k_tags=10, k_items=[10])
    config, results, _ = run_eval(config, home, show_progress)
    data = default_registry().dataset(dataset)
    levels = levels_of(data)
    summary = summarise(config, results, levels)
    metrics = summary["metrics"]
    concentration = summary.get("answer_concentration") or answer_concentration([])  # no user scored: nothing named
    return CandidateScore(candidate=candidate, policy=policy, users=summary["users_scored"],
                          cat_hr=float(metrics.get(f"cat_hr@10_{levels[0]}", 0.0)), item_hr=float(metrics.get("item_hr@10", 0.0)),
                          top_category_share=float(concentration["top_category_user_share"]),  # type: ignore[arg-type]
                          distinct_categories=int(concentration["distinct_categories"]))  # type: ignore[arg-type]


def check_policies(base: str, dataset: str, candidates: dict[str, tuple[str, Path]], users: int, home: Path,
                   serve: Serve, console: Console | None = None) -> PolicyChoice:
    """Measure every candidate (candidate -> (policy name, weights folder)) under `serve`, pick, store, return."""
    data = default_registry().dataset(dataset)
    levels = levels_of(data)
    scores: list[CandidateScore] = []
    for candidate, (policy, folder) in candidates.items():
        if console is not None:
            console.print(f"policy check on {dataset_key(dataset)}: {policy} alone on {users} validation users")
        with serve(folder):
            scores.append(measure_candidate(candidate, policy, dataset, users, home, console is not None))
    choice = PolicyChoice(base=base, dataset=dataset_key(dataset), data_hash=data.content_hash(),
                          metric=f"cat_hr@10_{levels[0]}", scores=scores, chosen=pick(scores))
    save_choice(home, choice)
    return choice


def policy_choice_for(base: str, dataset: str, models_dir: Path, home: Path, run_dir: Path, port: int,
                      users: int = CHECK_USERS, console: Console | None = None, policies_dir: Path = POLICIES_DIR,
                      serve: Serve | None = None) -> PolicyChoice | None:
    """The stored choice for (base, dataset), or the check run now; None when there is nothing to choose (no policy
    ships for `base` at all: the base is served, as it always was)."""
    shipped = {name: folder for name, folder in shipped_policies(base, policies_dir).items() if name != dataset_key(dataset)}
    if not shipped:
        return None
    data_hash = default_registry().dataset(dataset).content_hash()
    stored = load_choice(home, base, dataset, data_hash)
    if stored is not None and {s.candidate for s in stored.scores} == {BASE, *shipped}:
        return stored
    candidates: dict[str, tuple[str, Path]] = {BASE: (BASE, prepare_model(models_dir, base))}
    for name, folder in shipped.items():
        merged = prepare_policy(models_dir, base, name, policies_dir)
        assert merged is not None
        candidates[name] = (load_card(folder).name, merged)
    return check_policies(base, dataset, candidates, users, home,
                          serve or (lambda folder: vllm_serving(folder, port, run_dir)), console)
