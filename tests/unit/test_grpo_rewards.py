"""TRL-convention reward functions: parsing, shaping and the logged components."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recgpt.training.grpo_rewards import TagRewards, parse_categories, parse_tags
from recgpt.training.rewards import Gates


def answer(*tags: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": json.dumps({"tags": [{"tag": t, "rationale": "r"} for t in tags]})}]


def rewards() -> TagRewards:
    table = {"soft gel ink pens for daily note taking": "Pens", "recycled copy paper for the home office printer": "Paper"}
    return TagRewards(
        map_categories=lambda tags: [frozenset({table.get(t, "Other")}) for t in tags],
        embed=lambda tags: np.eye(len(tags), 4),  # orthogonal: diversity 1
        align=lambda prompts, texts: [0.9 if "pens" in t else 0.2 for t in texts],
        gates=Gates(align=0.5, div=0.2, len=0.5),
    )


def test_parse_tags() -> None:
    assert parse_tags('{"tags":[{"tag":" a b "},{"tag":""}]}') == ["a b"]
    assert parse_tags("not json") == [] and parse_tags('{"tags": 3}') == [] and parse_tags("[]") == []
    # unconstrained rollouts: the tag fields are read even when the JSON around them is broken
    assert parse_tags('{"tags":[{"tag":"gel pens","rationale":"x},{"tag":"desk lamp"') == ["gel pens", "desk lamp"]
    assert parse_tags('{"tags": ["gel pens", "desk lamp"]}') == ["gel pens", "desk lamp"]


def test_a_grounded_answer_is_scored_by_the_categories_it_names() -> None:
    grounded = json.dumps({"tags": [{"category": "Writing > Pens", "tag": "mystery gadget for you and me today", "rationale": "r"},
                                    {"category": "not a label", "tag": "recycled copy paper for the home office printer"}]})
    assert parse_categories(grounded) == ["Writing > Pens", "not a label"]
    assert parse_categories('{"tags":[{"category":"A","tag":"x","rationale":"y},{"tag":"z"') == ["A", None]  # broken JSON
    r = rewards()
    r.ground = lambda label: frozenset({label.rpartition(" > ")[2]}) if label.startswith("Writing") else None
    values = {f.__name__: f([[{"role": "user", "content": "p"}]], [[{"role": "assistant", "content": grounded}]],
                            target_categories=[["Pens", "Paper"]]) for f in r.functions("crs")[0]}
    # the first tag's text maps to "Other", but it names Pens: counted; the second names no label: mapped to Paper
    assert values["r_acc"] == [1.0]


def test_crs_functions_and_logged_parts() -> None:
    r = rewards()
    funcs, weights = r.functions("crs")
    assert [f.__name__ for f in funcs] == ["crs", "r_acc", "r_align", "r_div", "r_len", "r_leaf", "r_rank", "gate_align",
                                           "gate_div", "gate_len", "same_answer", "top_category_share"]
    assert weights == [1.0] + [0.0] * 11
    completions = [
        answer("soft gel ink pens for daily note taking", "recycled copy paper for the home office printer"),  # acc 1, align .9
        answer("recycled copy paper for the home office printer", "mystery gadget for you and me today"),   # align .2: gated
        [{"role": "assistant", "content": "I cannot answer in JSON"}],                                        # invalid
    ]
    prompts = [[{"role": "user", "content": "p"}]] * 3
    targets = [["Pens", "Paper"], ["Paper"], ["Pens"]]
    values = {f.__name__: f(prompts, completions, target_categories=targets) for f in funcs}
    assert values["r_acc"] == [1.0, 1.0, 0.0]
    assert values["crs"] == [1.0, 0.0, 0.0]          # the second answer's accuracy is gated by alignment
    assert values["gate_align"] == [1.0, 0.0, 0.0]
    assert values["r_len"] == [1.0, 1.0, 0.0] and values["r_div"] == [1.0, 1.0, 0.0]
    sum_funcs, _ = r.functions("sum")
    assert sum_funcs[0](prompts, completions, target_categories=targets)[1] > 0  # SUM still pays the gated answer
    with pytest.raises(ValueError):
        r.functions("product")


def test_real_tag_rewards_map_tags_through_chroma_at_the_configured_level(small_dataset_dir, isolated_home, tmp_path) -> None:
    import json as _json

    from recgpt.training.grpo import GRPORunConfig, real_tag_rewards

    config = GRPORunConfig(model="unused", output_dir=tmp_path / "run", dataset=str(small_dataset_dir), level="l2")
    rewards = real_tag_rewards(config)
    assert rewards.map_categories(["gel ink pens", "led desk lamp"]) == [frozenset({"Office > Writing"}), frozenset({"Office > Furniture"})]
    assert rewards.align(["p"], ["a"]) == [1.0]  # no reward model: the align gate is open, not faked per sample
    answer = _json.dumps({"tags": [{"tag": "colourful gel ink pens for daily journaling at home", "rationale": "r"},
                                   {"tag": "dimmable led desk lamp for late night reading work", "rationale": "r"}]})
    parts = rewards.parts(["p"], [answer], [["Office > Writing", "Office > Paper"]])[0]
    assert parts.acc == 0.5 and parts.len == 1.0 and parts.div > 0.2


def test_real_tag_rewards_score_with_the_reward_model(small_dataset_dir, isolated_home, tmp_path) -> None:
    from recgpt.training.grpo import GRPORunConfig, real_tag_rewards
    from tests.unit.test_reward_train import tiny_causal_dir

    model = tiny_causal_dir(tmp_path / "rm")
    config = GRPORunConfig(model="unused", output_dir=tmp_path / "run", dataset=str(small_dataset_dir), reward_model=str(model))
    scores = real_tag_rewards(config).align(["the pens", "the desk"], ["great pens for you", "awful lamp"])
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)


def test_the_reward_model_scores_in_the_window_it_was_trained_with(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from recgpt.training.configs import RM_MAX_LENGTH
    from recgpt.training.grpo import reward_window

    (tmp_path / "final").mkdir()
    assert reward_window(tmp_path / "final") == RM_MAX_LENGTH  # no run config beside it: the default window
    (tmp_path / "run_config.json").write_text(json.dumps({"max_length": 512}))
    assert reward_window(tmp_path / "final") == 512


def test_the_reward_model_is_read_through_its_calibration_offset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from recgpt.training.grpo import align_offset

    (tmp_path / "final").mkdir()
    assert align_offset(tmp_path / "final") == 0.0  # a run without a calibration: sigmoid(score) as before
    (tmp_path / "metrics.json").write_text(json.dumps({"align_offset": -1.25}))
    assert align_offset(tmp_path / "final") == -1.25


def test_the_alignment_gate_needs_a_reward_model_better_than_chance(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from recgpt.training.configs import GRPORunConfig
    from recgpt.training.grpo import align_gate_on

    (tmp_path / "final").mkdir()
    config = GRPORunConfig(model="unused", output_dir=tmp_path / "run", reward_model=str(tmp_path / "final"))
    (tmp_path / "metrics.json").write_text(json.dumps({"ranking_accuracy_after": 0.484, "held_out_pairs": 64}))
    assert not align_gate_on(config)  # at chance: gating accuracy on it would drop answers at random
    (tmp_path / "metrics.json").write_text(json.dumps({"ranking_accuracy_after": 0.673, "held_out_pairs": 52}))
    assert align_gate_on(config)  # .173 above chance, one SE is .069
    (tmp_path / "metrics.json").write_text(json.dumps({"ranking_accuracy_after": 0.55, "held_out_pairs": 52}))
    assert not align_gate_on(config)
    assert align_gate_on(GRPORunConfig(model="unused", output_dir=tmp_path / "run", reward_model=str(tmp_path / "final"), align_gate="on"))
    assert not align_gate_on(GRPORunConfig(model="unused", output_dir=tmp_path / "run", align_gate="off"))


def test_every_scored_rollout_is_logged_and_a_resumed_run_continues_the_numbering(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "rollouts.jsonl"
    prompts = [[{"role": "user", "content": "p"}]] * 2
    completions = [answer("soft gel ink pens for daily note taking"), [{"role": "assistant", "content": "not json"}]]
    r = rewards()
    r.rollout_log = log
    for f in r.functions("crs")[0]:  # every reward function of one batch: the batch is logged once
        f(prompts, completions, target_categories=[["Pens"], ["Pens"]])
    r.functions("crs")[0][0](prompts, list(reversed(completions)), target_categories=[["Pens"], ["Pens"]])
    resumed = rewards()
    resumed.rollout_log = log
    resumed.functions("sum")[0][0](prompts[:1], completions[:1], target_categories=[["Paper"]])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["batch"] for row in rows] == [0, 0, 1, 1, 2]
    assert rows[0]["tags"] == ["soft gel ink pens for daily note taking"] and rows[0]["targets"] == ["Pens"]
    # one tag: R_acc 1 but no diversity, so CRS's diversity gate gives 0 and SUM does not
    assert rows[0]["parts"]["acc"] == 1.0 and rows[0]["parts"]["div"] == 0.0 and rows[0]["crs"] == 0.0 and rows[0]["sum"] > 0
    assert rows[1]["tags"] == [] and rows[1]["crs"] == 0.0 and rows[4]["parts"]["acc"] == 0.0


def grounded(*categories: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": json.dumps({"tags": [{"category": c, "tag": f"tag {i}"} for i, c in enumerate(categories)]})}]


def test_same_answer_watches_whether_every_user_gets_one_answer() -> None:
    r = rewards()
    r.sameness_window = 3
    same = {f.__name__: f for f in r.functions("crs")[0]}["same_answer"]
    prompt = [[{"role": "user", "content": "p"}]] * 2
    # users answered for themselves: no earlier user's answer shares a category with this one's
    values = [same(prompt, [grounded(own, f"Other {own}"), grounded(own)], target_categories=[[own]] * 2)
              for own in ("Pens", "Paper", "Tape")]
    assert values == [[0.0, 0.0]] * 3  # the first batch has no earlier one to compare with
    # one earlier user of the three shares Paper with this rollout; the other rollout shares nothing
    assert same(prompt, [grounded("Paper", "Glue"), grounded("Glue")], target_categories=[["Pens"]] * 2) == [1 / 3, 0.0]
    # then every user gets Mailers: once the window holds only those batches, every rollout overlaps every earlier user
    for user in range(4):  # another user's prompt each batch (an identical batch is the cached one)
        values = same([[{"role": "user", "content": f"user {user}"}]] * 2, [grounded("Mailers", "Pencils"), grounded("Mailers")],
                      target_categories=[["Pens"]] * 2)
    assert values == [1.0, 1.0]
    assert "same_answer" in [f.__name__ for f in r.functions("sum")[0]]
    assert r.functions("crs")[1][-1] == 0.0  # logged, never optimised


def test_dense_parts_come_from_the_user_column_and_break_sparse_ties() -> None:
    """Two answers that both miss the category tie under the sparse reward; the dense one tells them apart by where the
    user's next item ranks in their retrieved items (rows carry `user_id`)."""
    from recgpt.training.grpo_rewards import top_category_share
    from recgpt.training.rewards import AccuracyMix

    seen: list[tuple[str, str]] = []

    def dense(user: str, text: str) -> tuple[float, float]:
        seen.append((user, text))
        return (0.0, 0.6 if "pens" in text else 0.1)

    r = TagRewards(map_categories=lambda tags: [frozenset({"Other"})] * len(tags), embed=lambda tags: np.eye(len(tags), 4),
                   align=lambda prompts, texts: [1.0] * len(texts), gates=Gates(align=0.0, div=0.0, len=0.0), dense=dense,
                   mix=AccuracyMix.dense())
    funcs, _ = r.functions("crs")
    by_name = {f.__name__: f for f in funcs}
    completions = [answer("gel pens for school"), answer("desk lamp for reading")]
    prompts = [[{"role": "user", "content": "p"}]] * 2
    crs = by_name["crs"](prompts, completions, target_categories=[["Pens"], ["Pens"]], user_id=["u1", "u1"])
    assert crs[0] > crs[1] > 0.0 and {u for u, _ in seen} == {"u1"}
    assert by_name["r_rank"](prompts, completions, target_categories=[["Pens"], ["Pens"]], user_id=["u1", "u1"]) == [0.6, 0.1]
    sparse = TagRewards(map_categories=r.map_categories, embed=r.embed, align=r.align, gates=r.gates)
    assert sparse.functions("crs")[0][0](prompts, completions, target_categories=[["Pens"], ["Pens"]]) == [0.0, 0.0]
    assert top_category_share([frozenset({"A"}), frozenset({"A", "B"}), frozenset({"C"}), frozenset()]) == 0.5
    assert top_category_share([]) == 0.0
