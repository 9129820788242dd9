"""scripts/arbiter_prior_sweep.py: a replayed row is paired against the stored baselines it must beat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.scripts import load_script


def _script():  # noqa: ANN202
    return load_script("arbiter_prior_sweep")


def test_replayed_rows_are_paired_against_the_stored_baselines(tmp_path: Path) -> None:
    sweep = _script()
    hits = {"u1": 1.0, "u2": 0.0, "u3": 1.0, "u4": 0.0}
    sasrec = {u: {"item_hr@10": h, "item_hr@30": 1.0, "item_hr@50": 1.0} for u, h in hits.items()}
    (tmp_path / "eval-office-test-sasrec.json").write_text(json.dumps({"per_user_hits": sasrec}))
    replay = {u: {"item_hr@10": 0.0, "item_hr@10 (score merge)": 1.0, "item_hr@30": 1.0, "item_hr@50": 1.0} for u in hits}
    found = sweep.against_baselines(tmp_path, "office", "test", {0.0: replay})
    assert set(found) == {"sasrec"}  # sasrec_categories has no stored row here: left out, not invented
    diffs = found["sasrec"]["0.0"]
    assert diffs["item_hr@10"]["diff"] == pytest.approx(-0.5)
    assert diffs["item_hr@10 (score merge)"]["diff"] == pytest.approx(0.5)  # the merged list against SASRec's HR@10
    assert diffs["item_hr@50"]["diff"] == 0.0 and diffs["item_hr@10"]["users"] == 4
