"""Environment context for a recommendation: date, season, weekday, upcoming holidays/festivals.

Public holidays come from the `holidays` package for a configurable country (ISO code, e.g.
"US", "CN", "GB"); on top of those we add the shopping festivals that drive e-commerce
intent (Singles' Day, Black Friday, Cyber Monday, Valentine's Day, back-to-school) because
no holiday calendar lists them. Weather and trends are caller-given strings: recgpt has no
weather feed, and inventing one would put fiction into every prompt.
"""

from __future__ import annotations

import datetime as dt

import holidays
from pydantic import BaseModel, Field

from recgpt.errors import RecGPTError

SOUTHERN_HEMISPHERE = {"AU", "NZ", "AR", "BR", "CL", "ZA", "UY", "PY"}
_NORTH_SEASONS = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
                  6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}
_FLIP = {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}


class Festival(BaseModel):
    name: str
    date: dt.date
    days_ahead: int


class Environment(BaseModel):
    """The situation part of the shared context."""

    date: dt.date
    weekday: str
    season: str
    country: str
    upcoming: list[Festival] = Field(default_factory=list)
    weather: str | None = Field(default=None, max_length=200)
    trend: str | None = Field(default=None, max_length=300)

    def describe(self) -> str:
        lines = [f"Date: {self.date.isoformat()} ({self.weekday}), season: {self.season}, locale: {self.country}"]
        if self.upcoming:
            events = "; ".join(f"{f.name} in {f.days_ahead} days" if f.days_ahead else f"{f.name} today"
                               for f in self.upcoming)
            lines.append(f"Upcoming: {events}")
        else:
            lines.append("Upcoming: no holiday or festival in the window")
        if self.weather:
            lines.append(f"Weather: {self.weather}")
        if self.trend:
            lines.append(f"Trend: {self.trend}")
        return "\n".join(lines)


def season_of(date: dt.date, country: str = "US") -> str:
    season = _NORTH_SEASONS[date.month]
    return _FLIP[season] if country.upper() in SOUTHERN_HEMISPHERE else season


def _shopping_festivals(year: int) -> dict[dt.date, str]:
    thanksgiving = max(d for d, n in holidays.US(years=year).items() if "Thanksgiving" in n)
    return {
        dt.date(year, 2, 14): "Valentine's Day",
        dt.date(year, 8, 15): "Back-to-school season",
        dt.date(year, 11, 11): "Singles' Day (Double 11)",
        thanksgiving + dt.timedelta(days=1): "Black Friday",
        thanksgiving + dt.timedelta(days=4): "Cyber Monday",
        dt.date(year, 12, 12): "Double 12",
    }


def build_environment(
    date: dt.date | None = None,
    country: str = "US",
    window_days: int = 30,
    weather: str | None = None,
    trend: str | None = None,
    max_events: int = 4,
) -> Environment:
    """Describe the situation on `date`: holidays within `window_days` ahead (today included)."""
    date = date or dt.date.today()
    country = country.upper()
    if country not in holidays.list_supported_countries():
        raise RecGPTError(f"unknown holiday locale {country!r}: use an ISO 3166 country code such as US, CN, GB")
    calendar = holidays.country_holidays(country, years=[date.year, date.year + 1])
    events: dict[dt.date, set[str]] = {}
    for day, name in calendar.items():
        events.setdefault(day, set()).update(n.strip() for n in name.split(";"))
    for year in (date.year, date.year + 1):
        for day, name in _shopping_festivals(year).items():
            events.setdefault(day, set()).add(name)
    upcoming = [
        Festival(name=name, date=day, days_ahead=(day - date).days)
        for day in sorted(events)
        if 0 <= (day - date).days <= window_days
        for name in sorted(events[day])
    ][:max_events]
    return Environment(
        date=date, weekday=date.strftime("%A"), season=season_of(date, country), country=country,
        upcoming=upcoming, weather=weather, trend=trend,
    )
