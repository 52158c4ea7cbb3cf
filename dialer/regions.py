"""Regional calling rules: where a callee presumably is, and which laws bind a call to them."""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import holidays

from dialer.phone import candidate_zones, country_of

#: Allowed local hours on one day: start inclusive, end exclusive; an end of 00:00 means midnight
#: at the end of the day, so (00:00, 00:00) is the whole day. None: no calls that day.
DayHours = tuple[time, time] | None

WHOLE_DAY: tuple[time, time] = (time(0), time(0))

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GROUPS: dict[str, tuple[int, ...]] = {
    "daily": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekend": (5, 6),
}
# A named day beats its group, a group beats "daily": the order in which table keys are applied.
_PRECEDENCE = (("daily",), ("weekdays", "weekend"), _DAY_NAMES)
_REGION = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_KEYS = frozenset(
    {
        "region",
        "source",
        "hours",
        "max_calls_per_24h",
        "holiday_ban",
        "holiday_country",
        "holiday_subdivision",
    }
)
_NONE = "none"  # the value that removes a shipped limit in an operator's row
_SHIPPED = "regional_rules.toml"
_AREA_CODES = "us_area_codes.toml"


@dataclass(frozen=True)
class CalleeProfile:
    """Where a callee presumably is: country, ISO 3166-2 subdivision if known, every zone it may ring in."""

    country: str
    subdivision: str | None
    zones: tuple[str, ...]


def callee_profile(e164: str) -> CalleeProfile:
    """The profile of a number; a US area code presumes the callee lives in that area code's state."""
    country = country_of(e164)
    subdivision = None
    if country == "US":
        digits = re.sub(r"\D", "", e164)
        state = _us_area_codes().get(digits[1:4])
        subdivision = f"US-{state}" if state else None
    return CalleeProfile(country, subdivision, candidate_zones(e164))


@dataclass(frozen=True)
class RegionalRule:
    """One law's limits on calls to callees in a region; every rule that matches a callee applies.

    ``hours`` has one entry per weekday, Monday first (see ``DayHours``); None means the region has
    no hours rule at all.
    """

    region: str
    hours: tuple[DayHours, ...] | None = None
    max_calls_per_24h: int | None = None
    holiday_ban: bool = False
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not _REGION.fullmatch(self.region):
            raise ValueError(f"region {self.region!r} is not like 'US' or 'US-FL'")
        if self.hours is not None:
            if len(self.hours) != 7:
                raise ValueError("hours need one entry per weekday")
            for name, day in zip(_DAY_NAMES, self.hours, strict=True):
                if day is not None and not (day[0] < day[1] or day[1] == time(0)):
                    raise ValueError(f"hours on {name} end before they start")
        if self.max_calls_per_24h is not None and self.max_calls_per_24h < 1:
            raise ValueError("max_calls_per_24h must be at least 1 (ban days with hours instead)")

    def hours_on(self, weekday: int) -> DayHours:
        """The allowed hours on a weekday (Monday = 0); the whole day when there is no hours rule."""
        return WHOLE_DAY if self.hours is None else self.hours[weekday]

    @property
    def holiday_calendar(self) -> tuple[str, str | None]:
        """The (country, subdivision) of the `holidays` calendar this rule bans, when it bans any."""
        country, _, subdivision = self.region.partition("-")
        if self.holiday_country and self.holiday_country != country:
            return self.holiday_country, self.holiday_subdivision
        return country, self.holiday_subdivision or subdivision or None

    def is_holiday(self, day: date) -> bool:
        """Whether this rule bans calls on a (callee-local) date because it is a public holiday."""
        return self.holiday_ban and day in _calendar(*self.holiday_calendar)


class RuleBook:
    """The regional rules in force, one per region code."""

    __slots__ = ("_rules",)

    def __init__(self, rules: Iterable[RegionalRule] = ()) -> None:
        table: dict[str, RegionalRule] = {}
        for rule in rules:
            if rule.region in table:
                raise ValueError(f"two rules for region {rule.region}")
            table[rule.region] = rule
        self._rules = MappingProxyType(table)

    @property
    def rules(self) -> Mapping[str, RegionalRule]:
        """Every rule, by region."""
        return self._rules

    def get(self, region: str) -> RegionalRule | None:
        """The rule for exactly this region, if any."""
        return self._rules.get(region)

    def rules_for(self, profile: CalleeProfile) -> tuple[RegionalRule, ...]:
        """Every rule that binds a call to this callee: the country's and the subdivision's, both."""
        found = (self._rules.get(profile.country), self._rules.get(profile.subdivision or ""))
        return tuple(rule for rule in found if rule is not None)

    def __len__(self) -> int:
        return len(self._rules)


def load_rules(extra: Path | None = None) -> RuleBook:
    """The shipped rules, then the operator's ``extra`` file: its rows change or add regions.

    A row in ``extra`` for a shipped region replaces only the keys it sets. Raises ValueError naming
    the file and the row on any malformed row.
    """
    shipped = resources.files("config").joinpath(_SHIPPED).read_text(encoding="utf-8")
    merged: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    sources = [(f"config/{_SHIPPED}", shipped)]
    if extra is not None:
        sources.append((str(extra), extra.read_text(encoding="utf-8")))
    for label, text in sources:
        seen: set[str] = set()
        for index, row in enumerate(_rows(label, text), start=1):
            at = f"{label}: rule #{index}"
            fields = _parse_row(row, at)
            region = fields["region"]
            if region in seen:
                raise ValueError(f"{at}: region {region} appears twice in the file")
            seen.add(region)
            merged[region] = {**merged.get(region, {}), **fields}
            where[region] = f"{at} ({region})"
    return RuleBook(_build(row, where[region]) for region, row in merged.items())


def _rows(label: str, text: str) -> list[dict[str, Any]]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{label}: not valid TOML: {exc}") from None
    unknown = set(document) - {"rule"}
    if unknown:
        raise ValueError(f"{label}: unknown top-level key(s) {sorted(unknown)}; rules go in [[rule]]")
    rows = document.get("rule", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{label}: 'rule' must be an array of tables ([[rule]])")
    return rows


def _parse_row(row: dict[str, Any], at: str) -> dict[str, Any]:
    """The row's keys, checked and converted to RegionalRule field values."""
    unknown = set(row) - _KEYS
    if unknown:
        # A misspelt key would silently drop a legal limit: refuse it.
        raise ValueError(f"{at}: unknown key(s) {sorted(unknown)}")
    region = row.get("region")
    if not isinstance(region, str) or not _REGION.fullmatch(region.upper()):
        raise ValueError(f"{at}: region must be like 'US' or 'US-FL'")
    fields: dict[str, Any] = {"region": region.upper()}
    for key in ("source", "holiday_country", "holiday_subdivision"):
        if key in row:
            if not isinstance(row[key], str) or not row[key].strip():
                raise ValueError(f"{at}: {key} must be a non-empty string")
            fields[key] = row[key].strip()
    if "holiday_ban" in row:
        if not isinstance(row["holiday_ban"], bool):
            raise ValueError(f"{at}: holiday_ban must be true or false")
        fields["holiday_ban"] = row["holiday_ban"]
    if "max_calls_per_24h" in row:
        cap = row["max_calls_per_24h"]
        if cap == _NONE:
            fields["max_calls_per_24h"] = None
        elif isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1:
            fields["max_calls_per_24h"] = cap
        else:
            raise ValueError(f'{at}: max_calls_per_24h must be an integer >= 1 or "none"')
    if "hours" in row:
        fields["hours"] = _parse_hours(row["hours"], at)
    return fields


def _parse_hours(value: Any, at: str) -> tuple[DayHours, ...] | None:
    if value == _NONE:
        return None
    if not isinstance(value, dict):
        raise ValueError(f'{at}: hours must be a table of days, or "none"')
    unknown = set(value) - set(_DAY_NAMES) - set(_GROUPS)
    if unknown:
        raise ValueError(f"{at}: hours has unknown day(s) {sorted(unknown)}")
    days: list[DayHours | str] = ["missing"] * 7
    for level in _PRECEDENCE:
        for key in level:
            if key in value:
                parsed = _parse_day(value[key], f"{at}: hours.{key}")
                indices = _GROUPS[key] if key in _GROUPS else (_DAY_NAMES.index(key),)
                for index in indices:
                    days[index] = parsed
    missing = [name for name, day in zip(_DAY_NAMES, days, strict=True) if isinstance(day, str)]
    if missing:
        raise ValueError(f"{at}: hours do not cover {', '.join(missing)} (use daily, weekdays, weekend)")
    return tuple(day for day in days if not isinstance(day, str))


def _parse_day(value: Any, at: str) -> DayHours:
    if value == "banned":
        return None
    if value == "any":
        return WHOLE_DAY
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f'{at}: expected ["HH:MM", "HH:MM"], "banned" or "any"')
    start, end = _parse_time(value[0], at, end=False), _parse_time(value[1], at, end=True)
    if not (start < end or end == time(0)):
        raise ValueError(f"{at}: ends before it starts (hours cannot cross midnight here)")
    return start, end


def _parse_time(value: Any, at: str, *, end: bool) -> time:
    if isinstance(value, time):
        return value
    if end and value == "24:00":
        return time(0)
    try:
        parsed = time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise ValueError(f'{at}: {value!r} is not a local time like "08:00"')
    return parsed


def _build(fields: dict[str, Any], at: str) -> RegionalRule:
    if not fields.get("source"):
        raise ValueError(f"{at}: a new region needs a source (the law it comes from)")
    try:
        rule = RegionalRule(**fields)
    except ValueError as exc:
        raise ValueError(f"{at}: {exc}") from None
    if rule.holiday_ban:
        try:
            _calendar(*rule.holiday_calendar)
        except NotImplementedError as exc:
            raise ValueError(f"{at}: no holiday calendar: {exc}") from None
    return rule


@functools.lru_cache(maxsize=64)
def _calendar(country: str, subdivision: str | None) -> holidays.HolidayBase:
    # Built once per calendar: building one is slow, looking a date up is cheap (years fill lazily).
    return holidays.country_holidays(country, subdiv=subdivision)


@functools.cache
def _us_area_codes() -> dict[str, str]:
    """Area code -> state code, from the shipped table; read once, on first use."""
    text = resources.files("config").joinpath(_AREA_CODES).read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for state, codes in tomllib.loads(text)["states"].items():
        for code in codes:
            key = str(code)
            if not (isinstance(code, int) and 200 <= code <= 999) or key in table:
                raise ValueError(f"config/{_AREA_CODES}: bad or repeated area code {code!r} ({state})")
            table[key] = state
    return table
