"""scripts/paired_rows.py: two eval rows paired on the users both scored, after − before."""

from __future__ import annotations

import pytest

from tests.unit.scripts import load_script


def _script():  # noqa: ANN202
    return load_script("paired_rows")


def test_rows_are_paired_on_the_users_both_scored_only() -> None:
    pair = _script().pair
    before = {"per_user_hits": {"a": {"item_hr@10": 0.0}, "b": {"item_hr@10": 1.0}, "c": {"item_hr@10": 0.0},
                                "z": {"item_hr@10": 1.0}}}  # z: only before scored it, left out
    after = {"per_user_hits": {"a": {"item_hr@10": 1.0}, "b": {"item_hr@10": 1.0}, "c": {"item_hr@10": 1.0}}}
    out = pair(before, after, ("item_hr@10", "cat_hr@10_l2"))
    assert out["users"] == 3 and list(out["metrics"]) == ["item_hr@10"]  # a metric neither row has is left out
    m = out["metrics"]["item_hr@10"]
    assert m["before"] == pytest.approx(1 / 3) and m["after"] == 1.0 and m["difference"] == pytest.approx(2 / 3)
    assert m["users"] == 3 and m["standard_error"] == pytest.approx((1 / 3) ** 0.5 / 3 ** 0.5)
