"""The policy check on the real server: each candidate alone on real validation users, the pick, the stored record,
and the notice the programmatic API then gives. The session's one server stands in for every candidate (serving
them in turn would start a second vLLM beside it); `recgpt.eval.policy_check.vllm_serving` is the real start/stop."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

import pytest

from recgpt.eval.policy_check import check_policies
from recgpt.schema.context import Context
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.serving.policy_choice import BASE, load_choice
from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@needs_shared_data
def test_the_check_measures_each_candidate_and_the_api_names_the_choice(vllm_server: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("RECGPT_HOME", str(home))
    get_settings.cache_clear()
    served: list[Path] = []

    def serve(folder: Path) -> nullcontext[None]:
        served.append(folder)
        return nullcontext()

    candidates = {BASE: ("base", Path("/weights/base")), "office": ("office-test", Path("/weights/office"))}
    choice = check_policies("smollm2-135m", "movielens", candidates, 3, home, serve)
    assert served == [Path("/weights/base"), Path("/weights/office")]
    assert [s.candidate for s in choice.scores] == [BASE, "office"] and choice.metric == "cat_hr@10_genre"
    for score in choice.scores:
        assert score.users == 3 and 0.0 <= score.cat_hr <= 1.0 and 0.0 <= score.item_hr <= 1.0
        assert score.distinct_categories >= 1 and 0.0 < score.top_category_share <= 1.0
    assert choice.scores[0] == choice.scores[1].model_copy(update={"candidate": BASE, "policy": "base"})  # one server
    assert choice.chosen == BASE  # equal numbers: the base, never a foreign policy on a tie
    data_hash = default_registry().dataset("movielens").content_hash()
    assert load_choice(home, "smollm2-135m", "movielens", data_hash) == choice

    from recgpt.services import policy_notice

    monkeypatch.setattr(policy_notice, "_told", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = policy_notice.policy_notice_once(Context(), "movielens")  # the served weights are the base's: as chosen
    assert line == choice.notice() and "3 validation users" in line and not caught
    get_settings.cache_clear()
