"""Listwise and pointwise reward losses on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from recgpt.training.listwise import listwise_loss, pointwise_loss, ranking_accuracy


def test_listwise_hand_computed_three_levels() -> None:
    s = torch.tensor([2.0, 1.0, 0.0])  # Superior, Average, Bad of one prompt
    g = torch.tensor([2, 1, 0])
    groups = torch.zeros(3, dtype=torch.long)
    # Superior vs {A, B}: -log(e^2 / (e^2 + e^1 + e^0)); Average vs {B}: -log(e^1 / (e^1 + e^0)); Bad: no competitor
    expected = (-math.log(math.e**2 / (math.e**2 + math.e + 1)) - math.log(math.e / (math.e + 1))) / 2
    assert float(listwise_loss(s, g, groups)) == pytest.approx(expected, rel=1e-6)


def test_listwise_ignores_cross_group_pairs_and_equal_grades() -> None:
    s = torch.tensor([0.0, 5.0, 1.0, 1.0])
    g = torch.tensor([2, 0, 1, 1])
    groups = torch.tensor([0, 1, 2, 2])  # nothing comparable within any group
    loss = listwise_loss(s.requires_grad_(), g, groups)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still differentiable


def test_listwise_prefers_the_right_order() -> None:
    g, groups = torch.tensor([2, 1, 0]), torch.zeros(3, dtype=torch.long)
    assert listwise_loss(torch.tensor([3.0, 1.0, -1.0]), g, groups) < listwise_loss(torch.tensor([-1.0, 1.0, 3.0]), g, groups)


def test_pointwise_targets() -> None:
    loss = pointwise_loss(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([2, 1, 0]))
    assert float(loss) == pytest.approx(math.log(2))  # sigmoid(0) = 0.5 vs targets 1, 0.5, 0: mean BCE = ln 2


def test_ranking_accuracy() -> None:
    g, groups = torch.tensor([2, 1, 0, 2, 0]), torch.tensor([0, 0, 0, 1, 1])
    s = torch.tensor([3.0, 1.0, 2.0, 0.0, 0.0])  # group 0: S>A ok, S>B ok, A>B wrong; group 1: tie
    assert ranking_accuracy(s, g, groups) == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert math.isnan(ranking_accuracy(s, torch.zeros(5, dtype=torch.long), groups))
