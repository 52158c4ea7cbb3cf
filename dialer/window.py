"""Calling windows: may a callee be dialled now (campaign window AND every regional rule), and when next."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.domain import CampaignWindow
from dialer.regions import CalleeProfile, RegionalRule, RuleBook

_DAY = timedelta(days=1)
_CAP_PERIOD = timedelta(hours=24)
# Offsets are sampled this often to find DST transitions; tzdb has no two transitions this close
# together, so none is missed.
_SAMPLE = timedelta(hours=6)

WallSpan = tuple[datetime, datetime]  # naive local wall times, start inclusive, end exclusive


class BlockReason(StrEnum):
    """Why a call may not be placed now; the values are metric label values."""

    CAMPAIGN_DAY = "campaign_day"
    CAMPAIGN_HOURS = "campaign_hours"
    REGIONAL_DAY = "regional_day"
    REGIONAL_HOURS = "regional_hours"
    HOLIDAY = "holiday"
    FREQUENCY_CAP = "frequency_cap"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    NEVER_OPENS = "never_opens"


@dataclass(frozen=True)
class WindowDecision:
    """Whether a call is allowed at ``now``; if not, why, and the first instant (UTC) it will be."""

    open: bool
    reason: BlockReason | None
    next_open: datetime | None  # None: held (unknown zone) or no opening within the horizon


def check_window(
    callee: CalleeProfile,
    window: CampaignWindow,
    rules: RuleBook,
    now: datetime,
    recent_dials: Sequence[datetime] = (),
    horizon_days: int = 366,
) -> WindowDecision:
    """Decide whether ``callee`` may be dialled at ``now``, and when it may be if not.

    Open iff the campaign window is open in its zone, every rule of ``rules`` that applies to the
    callee is satisfied in every zone the number may ring in, and fewer than the tightest
    ``max_calls_per_24h`` of those rules were dialled in the last 24 h (``recent_dials``).
    """
    now = _aware_utc(now, "now")
    gates = _gates(callee, window, rules, recent_dials)
    if gates is None:
        # Never dial on a guessed zone: the prospect is held until someone fixes the number.
        return WindowDecision(open=False, reason=BlockReason.UNKNOWN_TIMEZONE, next_open=None)
    closed = next((gate for gate in gates if not gate.is_open(now)), None)
    if closed is None:
        return WindowDecision(open=True, reason=None, next_open=now)
    opening = _first_common_opening(gates, now, now + timedelta(days=horizon_days))
    if opening is None:
        return WindowDecision(open=False, reason=BlockReason.NEVER_OPENS, next_open=None)
    return WindowDecision(open=False, reason=closed.why_closed(now), next_open=opening)


def window_open(
    callee: CalleeProfile,
    window: CampaignWindow,
    rules: RuleBook,
    now: datetime,
    recent_dials: Sequence[datetime] = (),
    horizon_days: int = 366,
) -> bool:
    """Whether ``callee`` may be dialled at ``now``; never searches, so ``horizon_days`` is unused."""
    now = _aware_utc(now, "now")
    gates = _gates(callee, window, rules, recent_dials)
    return gates is not None and all(gate.is_open(now) for gate in gates)


def next_open(
    callee: CalleeProfile,
    window: CampaignWindow,
    rules: RuleBook,
    now: datetime,
    recent_dials: Sequence[datetime] = (),
    horizon_days: int = 366,
) -> datetime | None:
    """The first instant (UTC) at or after ``now`` at which ``callee`` may be dialled, or None."""
    return check_window(callee, window, rules, now, recent_dials, horizon_days).next_open


def _aware_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    # All arithmetic in UTC: aware datetimes sharing a zone compare by wall time and ignore fold.
    return moment.astimezone(UTC)


def _gates(
    callee: CalleeProfile, window: CampaignWindow, rules: RuleBook, recent_dials: Sequence[datetime]
) -> list[_Gate] | None:
    """Every condition the call must meet, campaign first; None when the callee's zone is unknown."""
    try:
        campaign_zone = _zone(window.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("the campaign window's timezone is not a known IANA zone") from None
    dials = [_aware_utc(dial, "recent_dials") for dial in recent_dials]
    if not callee.zones:
        return None
    try:
        zones = [_zone(key) for key in dict.fromkeys(callee.zones)]
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    gates: list[_Gate] = [_CampaignGate(window, campaign_zone)]
    applicable = rules.rules_for(callee)
    for rule in applicable:
        for zone in zones:
            if rule.holiday_ban:
                gates.append(_HolidayGate(rule, zone))
            if rule.hours is not None:
                gates.append(_HoursGate(rule, zone))
    caps = [rule.max_calls_per_24h for rule in applicable if rule.max_calls_per_24h is not None]
    if caps:
        gates.append(_CapGate(dials, min(caps)))
    return gates


@functools.lru_cache(maxsize=1024)
def _zone(key: str) -> ZoneInfo:
    # ZoneInfo keeps only a few zones alive; without this, a toll-free number's 40-odd zones would be
    # re-read from disk on every check.
    return ZoneInfo(key)


def _first_common_opening(gates: Sequence[_Gate], start: datetime, limit: datetime) -> datetime | None:
    """The first instant in [start, limit] at which every gate is open.

    Leapfrog: a closed gate moves the candidate to its own next opening, which no common opening
    can precede; a full pass with every gate open ends it.
    """
    moment = start
    while True:
        moved = False
        for gate in gates:
            if not gate.is_open(moment):
                opening = gate.opens_at(moment, limit)
                if opening is None:
                    return None
                if opening <= moment:
                    # A gate closed now must open later; looping here would stall the dispatch loop.
                    raise RuntimeError(f"{type(gate).__name__} did not move past a closed instant")
                moment, moved = opening, True
        if not moved:
            return moment


class _Gate(ABC):
    """One condition of the window: open or closed at an instant, and its next opening."""

    @abstractmethod
    def is_open(self, moment: datetime) -> bool:
        """Whether the condition holds at ``moment`` (UTC)."""

    @abstractmethod
    def opens_at(self, moment: datetime, limit: datetime) -> datetime | None:
        """The first instant >= ``moment`` at which the condition holds; None if after ``limit``."""

    @abstractmethod
    def why_closed(self, moment: datetime) -> BlockReason:
        """The reason to report when the condition fails at ``moment``."""


class _WallGate(_Gate):
    """A condition on local wall-clock time in one zone: allowed spans of each local date."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    @abstractmethod
    def spans(self, day: date) -> tuple[WallSpan, ...]:
        """The wall-time spans allowed that start on ``day`` (a span may run into the next day)."""

    def is_open(self, moment: datetime) -> bool:
        wall = _wall(moment, self.zone)
        today = wall.date()
        return any(start <= wall < end for day in (today - _DAY, today) for start, end in self.spans(day))

    def opens_at(self, moment: datetime, limit: datetime) -> datetime | None:
        if self.is_open(moment):
            return moment
        # The open set begins either where the wall clock reaches a span's start, or where a DST
        # transition makes it jump into a span (a start swallowed by a spring-forward gap, or a
        # fall-back that replays allowed wall times). Collect both, one UTC day at a time.
        low = moment
        while low <= limit:
            high = low + _DAY
            candidates = _transitions(self.zone, low, high)
            day, last = _wall(low, self.zone).date() - _DAY, _wall(high, self.zone).date() + _DAY
            while day <= last:
                for start, _end in self.spans(day):
                    candidates.extend(_instants(start, self.zone))
                day += _DAY
            hits = [c for c in candidates if low <= c <= high and self.is_open(c)]
            if hits:
                first = min(hits)
                return first if first <= limit else None
            low = high
        return None


class _CampaignGate(_WallGate):
    """The campaign's own window, in the campaign's zone."""

    def __init__(self, window: CampaignWindow, zone: ZoneInfo) -> None:
        super().__init__(zone)
        self.days = window.days
        self.start = window.start.replace(tzinfo=None, fold=0)
        self.end = window.end.replace(tzinfo=None, fold=0)

    def spans(self, day: date) -> tuple[WallSpan, ...]:
        if day.weekday() not in self.days:
            return ()
        if self.start == self.end:
            return _whole_day(day)
        # An end before the start crosses midnight: the span belongs to the day it starts on.
        end_day = day + _DAY if self.end < self.start else day
        return ((datetime.combine(day, self.start), datetime.combine(end_day, self.end)),)

    def why_closed(self, moment: datetime) -> BlockReason:
        on_day = _wall(moment, self.zone).weekday() in self.days
        return BlockReason.CAMPAIGN_HOURS if on_day else BlockReason.CAMPAIGN_DAY


class _RuleGate(_WallGate, ABC):
    """A regional rule's condition, in one of the callee's zones."""

    def __init__(self, rule: RegionalRule, zone: ZoneInfo) -> None:
        super().__init__(zone)
        self.rule = rule


class _HoursGate(_RuleGate):
    """A regional rule's allowed hours (a banned day has none)."""

    def spans(self, day: date) -> tuple[WallSpan, ...]:
        hours = self.rule.hours_on(day.weekday())
        if hours is None:
            return ()
        start, end = hours
        end_day = day + _DAY if end == time(0) else day  # an end of 00:00 is midnight after the day
        return ((datetime.combine(day, start), datetime.combine(end_day, end)),)

    def why_closed(self, moment: datetime) -> BlockReason:
        banned = self.rule.hours_on(_wall(moment, self.zone).weekday()) is None
        return BlockReason.REGIONAL_DAY if banned else BlockReason.REGIONAL_HOURS


class _HolidayGate(_RuleGate):
    """A regional rule's holiday ban: whole local dates closed."""

    def spans(self, day: date) -> tuple[WallSpan, ...]:
        return () if self.rule.is_holiday(day) else _whole_day(day)

    def why_closed(self, moment: datetime) -> BlockReason:
        return BlockReason.HOLIDAY


class _CapGate(_Gate):
    """At most ``cap`` dials in any 24 h; dials stamped after now (clock skew) count too."""

    def __init__(self, dials: list[datetime], cap: int) -> None:
        self.dials = sorted(dials)
        self.cap = cap

    def _count(self, moment: datetime) -> int:
        return len(self.dials) - bisect_right(self.dials, moment - _CAP_PERIOD)

    def is_open(self, moment: datetime) -> bool:
        return self._count(moment) < self.cap

    def opens_at(self, moment: datetime, limit: datetime) -> datetime | None:
        # Open once enough of the oldest dials are 24 h old: the k-th oldest decides.
        must_expire = len(self.dials) - self.cap + 1
        if must_expire <= 0:
            return moment
        opening = max(moment, self.dials[must_expire - 1] + _CAP_PERIOD)
        return opening if opening <= limit else None

    def why_closed(self, moment: datetime) -> BlockReason:
        return BlockReason.FREQUENCY_CAP


def _whole_day(day: date) -> tuple[WallSpan, ...]:
    return ((datetime.combine(day, time(0)), datetime.combine(day + _DAY, time(0))),)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock time of an instant in a zone."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every instant (UTC) whose wall time in ``zone`` is ``wall``: none in a gap, two in a fold."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        # zoneinfo maps a wall time in a gap to some instant anyway; the round trip weeds it out.
        if _wall(instant, zone) == wall and instant not in found:
            found.append(instant)
    return found


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta | None:
    return moment.astimezone(zone).utcoffset()


def _transitions(zone: ZoneInfo, low: datetime, high: datetime) -> list[datetime]:
    """The instants in (low, high] at which the zone's UTC offset changes."""
    found: list[datetime] = []
    before, offset = low, _offset(low, zone)
    while before < high:
        after = min(before + _SAMPLE, high)
        offset_after = _offset(after, zone)
        if offset_after != offset:
            found.append(_bisect_change(zone, before, after, offset))
        before, offset = after, offset_after
    return found


def _bisect_change(zone: ZoneInfo, before: datetime, after: datetime, offset: timedelta | None) -> datetime:
    """The first whole second in (before, after] whose offset differs from ``offset``."""
    # tzdb transitions fall on whole seconds; bisect over integer timestamps.
    low, high = int(before.timestamp()), int(after.timestamp()) + 1
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(datetime.fromtimestamp(middle, UTC), zone) == offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)
