from __future__ import annotations

import datetime as dt

import pytest

from recgpt.errors import RecGPTError
from recgpt.tools.context.environment import build_environment, season_of


@pytest.mark.parametrize(
    ("date", "country", "season"),
    [("2026-01-15", "US", "winter"), ("2026-04-01", "US", "spring"), ("2026-07-04", "GB", "summer"),
     ("2026-10-31", "CN", "autumn"), ("2026-01-15", "AU", "summer"), ("2026-07-04", "BR", "winter")],
)
def test_season_by_month_and_hemisphere(date: str, country: str, season: str) -> None:
    assert season_of(dt.date.fromisoformat(date), country) == season


def test_upcoming_holidays_and_shopping_festivals() -> None:
    env = build_environment(dt.date(2026, 11, 20), country="US", window_days=14)
    names = [f.name for f in env.upcoming]
    assert "Thanksgiving Day" in names and "Black Friday" in names
    black_friday = next(f for f in env.upcoming if f.name == "Black Friday")
    assert black_friday.date == dt.date(2026, 11, 27) and black_friday.days_ahead == 7
    assert env.weekday == "Friday" and env.season == "autumn"
    assert "Black Friday in 7 days" in env.describe()


def test_locale_changes_the_calendar_and_weather_is_passed_through() -> None:
    env = build_environment(dt.date(2026, 2, 10), country="CN", window_days=10, weather="cold, light snow")
    assert any("Spring Festival" in f.name or "Chinese New Year" in f.name for f in env.upcoming)
    assert "Weather: cold, light snow" in env.describe()


def test_year_boundary_and_empty_window() -> None:
    env = build_environment(dt.date(2026, 12, 30), country="US", window_days=3)
    assert [f.name for f in env.upcoming] == ["New Year's Day"]
    quiet = build_environment(dt.date(2026, 3, 3), country="US", window_days=1)
    assert quiet.upcoming == [] and "no holiday" in quiet.describe()


def test_unknown_locale_is_a_clear_error() -> None:
    with pytest.raises(RecGPTError, match="unknown holiday locale 'XX'"):
        build_environment(dt.date(2026, 1, 1), country="XX")
