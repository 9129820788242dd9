"""A dataset with no policy of its own is served what a measured check chose: the pick, the stored record, the
check's orchestration (one server at a time, run once), the notice from the CLI and the API alike."""

from __future__ import annotations

import asyncio
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from recgpt.eval import policy_check
from recgpt.tools.serving.policy_choice import (
    BASE,
    CandidateScore,
    PolicyChoice,
    latest_choice,
    load_choice,
    pick,
    save_choice,
    served_policy_notice,
)


def score(candidate: str, cat: float, item: float = 0.1, top: float = 0.2, policy: str | None = None) -> CandidateScore:
    return CandidateScore(candidate=candidate, policy=policy or candidate, users=50, cat_hr=cat, item_hr=item,
                          top_category_share=top, distinct_categories=12)


def test_the_best_category_hit_rate_wins_then_item_hits_then_spread_then_the_base() -> None:
    assert pick([score(BASE, 0.68), score("office", 0.48)]) == BASE  # MovieLens: the base beat the Office policy
    assert pick([score(BASE, 0.30), score("office", 0.42)]) == "office"
    assert pick([score(BASE, 0.40, item=0.10), score("office", 0.40, item=0.12)]) == "office"
    assert pick([score(BASE, 0.40, top=0.73), score("office", 0.40, top=0.28)]) == "office"  # one path for 73% of users
    assert pick([score("office", 0.40), score(BASE, 0.40)]) == BASE  # a tie never serves a foreign policy
    with pytest.raises(ValueError):
        pick([])


def choice(chosen: str, dataset: str = "movielens", data_hash: str = "abc123") -> PolicyChoice:
    return PolicyChoice(base="qwen2.5-coder-0.5b", dataset=dataset, data_hash=data_hash, metric="cat_hr@10_genre",
                        scores=[score(BASE, 0.68), score("office", 0.48, policy="office-sft")], chosen=chosen)


def test_the_choice_is_stored_per_dataset_content_and_names_its_numbers(tmp_path: Path) -> None:
    stored = choice(BASE)
    save_choice(tmp_path, stored)
    assert load_choice(tmp_path, "qwen2.5-coder-0.5b", "movielens", "abc123") == stored
    assert load_choice(tmp_path, "qwen2.5-coder-0.5b", "movielens", "changed") is None  # new content: checked again
    assert load_choice(tmp_path, "qwen2.5-coder-0.5b", "/data/movielens", "abc123") == stored  # a folder by its name
    assert latest_choice(tmp_path, "movielens") == stored and latest_choice(tmp_path, "office") is None
    notice = stored.notice()
    assert notice == ("movielens has no trained policy of its own: serving the untrained base, chosen by a policy-alone "
                      "check on 50 validation users (cat_hr@10_genre / item_hr@10 0.680 / 0.100 against office-sft 0.480 / "
                      "0.100); train one with "
                      "`recgpt train chain --dataset movielens`")
    assert "policy office-sft (trained on office)" in choice("office").notice()


def test_the_notice_follows_what_is_served_against_what_the_check_chose(tmp_path: Path) -> None:
    from recgpt.tools.serving.policy import POLICIES_DIR, load_card

    office = load_card(POLICIES_DIR / "qwen2.5-coder-0.5b" / "office")
    policy = f"recgpt-policy@/m/Qwen2.5-Coder-0.5B-Instruct-policy-{office.adapter_sha256[:8]}[w:1:2]"
    base = "recgpt-policy@/m/Qwen2.5-Coder-0.5B-Instruct[w:1:2]"
    assert served_policy_notice(base, "movielens", tmp_path) is None  # the base, no check on record: nothing claimed
    save_choice(tmp_path, choice(BASE))
    assert served_policy_notice(base, "movielens", tmp_path) == choice(BASE).notice()
    warning = served_policy_notice(policy, "movielens", tmp_path)
    assert warning is not None and "trained on office, not movielens; the check chose base" in warning
    save_choice(tmp_path, choice("office"))
    assert served_policy_notice(policy, "movielens", tmp_path) == choice("office").notice()
    assert served_policy_notice(policy, "office", tmp_path) is None


@pytest.fixture()
def check_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The check's surroundings without a server: two shipped policies (office, another), a dataset stub, a fake
    serve that proves one server at a time, and a measurement that records what it measured."""
    policies = tmp_path / "policies" / "qwen2.5-coder-0.5b"
    for name in ("office", "books"):
        (policies / name).mkdir(parents=True)
        (policies / name / "policy.json").write_text("{}")
    world: dict = {"served": [], "measured": [], "running": 0, "hash": "h1"}
    data = SimpleNamespace(items={}, content_hash=lambda: world["hash"])
    monkeypatch.setattr(policy_check, "default_registry", lambda: SimpleNamespace(dataset=lambda name: data))
    monkeypatch.setattr(policy_check, "prepare_model", lambda models_dir, base: tmp_path / "weights" / "base")
    monkeypatch.setattr(policy_check, "prepare_policy", lambda models_dir, base, name, policies_dir: tmp_path / "weights" / name)
    monkeypatch.setattr(policy_check, "load_card", lambda folder: SimpleNamespace(name=f"{folder.name}-sft"))
    results = {BASE: 0.30, "office": 0.45, "books": 0.20}

    def measure(candidate: str, policy: str, dataset: str, users: int, home: Path, show_progress: bool = True) -> CandidateScore:
        assert world["running"] == 1, "measured with no server, or with two"
        world["measured"].append(candidate)
        return score(candidate, results[candidate], policy=policy)

    @contextmanager
    def serve(folder: Path) -> Iterator[None]:
        world["running"] += 1
        world["served"].append(folder.name)
        try:
            yield
        finally:
            world["running"] -= 1

    monkeypatch.setattr(policy_check, "measure_candidate", measure)
    world.update(policies=policies.parent, serve=serve, home=tmp_path / "home")
    return world


def test_the_check_serves_each_candidate_in_turn_and_runs_once(check_world: dict) -> None:
    w = check_world
    args = dict(models_dir=Path("/models"), home=w["home"], run_dir=Path("/run"), port=8000, users=50,
                policies_dir=w["policies"], serve=w["serve"])
    made = policy_check.policy_choice_for("qwen2.5-coder-0.5b", "movielens", **args)
    assert made is not None and made.chosen == "office" and made.winner().policy == "office-sft"
    assert w["served"] == ["base", "books", "office"] and w["running"] == 0
    assert policy_check.policy_choice_for("qwen2.5-coder-0.5b", "movielens", **args) == made
    assert w["measured"] == [BASE, "books", "office"]  # the stored choice was read back: nothing measured again
    w["hash"] = "h2"  # the dataset changed: checked again
    policy_check.policy_choice_for("qwen2.5-coder-0.5b", "movielens", **args)
    assert len(w["measured"]) == 6
    books = policy_check.policy_choice_for("qwen2.5-coder-0.5b", "books", **args)  # its own policy is no candidate
    assert books is not None and {s.candidate for s in books.scores} == {BASE, "office"}
    assert policy_check.policy_choice_for("smollm2-135m", "movielens", **args) is None  # nothing ships: nothing to choose


def test_serving_a_dataset_without_a_policy_serves_the_checked_choice(check_world: dict, isolated_home: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.cli import common

    made = choice("office")
    monkeypatch.setattr(common, "shipped_policy", lambda name, dataset: None)
    monkeypatch.setattr(common, "shipped_policies", lambda name: {"office": Path("/p/office")})
    monkeypatch.setattr(policy_check, "policy_choice_for", lambda *a, **k: made)
    monkeypatch.setattr(common, "prepare_policy", lambda models_dir, name, dataset: Path(f"/models/merged-{dataset}"))
    printed: list[str] = []
    monkeypatch.setattr(common.console, "print", lambda text, **k: printed.append(str(text)))
    assert common.model_folder(None, dataset="movielens") == Path("/models/merged-office")
    assert printed == [made.notice()]
    monkeypatch.setattr(policy_check, "policy_choice_for", lambda *a, **k: choice(BASE))
    monkeypatch.setattr(common, "resolve_model", lambda name, models_dir, prepare=True: Path(f"/models/{name}"))
    assert common.model_folder(None, dataset="movielens") == Path("/models/qwen2.5-coder-0.5b")


def test_the_api_warns_once_per_served_weights_and_dataset(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.schema.context import Context
    from recgpt.services import policy_notice

    save_choice(isolated_home, choice(BASE))
    monkeypatch.setattr(policy_notice, "served_model_identity", lambda *a: "recgpt-policy@/m/Qwen2.5-Coder-0.5B-Instruct[w:1:2]")
    monkeypatch.setattr(policy_notice, "_told", set())
    ctx = Context(base_url="http://127.0.0.1:9/v1", model="recgpt-policy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(policy_notice.awarn_policy_notice(ctx, "movielens"))
        asyncio.run(policy_notice.awarn_policy_notice(ctx, "movielens"))  # told once
    assert [str(w.message) for w in caught] == [choice(BASE).notice()]
    assert caught[0].category is policy_notice.PolicyNotice
    assert policy_notice.policy_notice_once(ctx, "office") is None  # the base on office: nothing on record
    monkeypatch.setattr(policy_notice, "served_model_identity", lambda *a: "recgpt-policy")  # the endpoint said nothing
    monkeypatch.setattr(policy_notice, "_told", set())
    assert policy_notice.policy_notice_once(ctx, "movielens") is None
    assert policy_notice.policy_notice_once(Context(base_url="http://127.0.0.1:9/v1"), "books") is None  # unreachable
