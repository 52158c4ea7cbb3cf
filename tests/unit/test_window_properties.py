"""Property tests of the calling window against a brute-force reference, across DST transitions.

The reference below is written from the rules' wording, independently of ``dialer.window``: it
evaluates one instant at a time, in every zone. Every boundary in these tests lies on the UTC
quarter-hour grid (quarter-hour wall times, zone offsets that are multiples of 15 minutes, DST
transitions at whole local hours, dials on the grid), so scanning the grid finds the true first
opening exactly.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.domain import CampaignWindow
from dialer.regions import CalleeProfile, DayHours, RegionalRule, RuleBook
from dialer.window import check_window, window_open

ZONES = (
    "America/New_York",
    "America/Phoenix",
    "America/St_Johns",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
)
QUARTER = timedelta(minutes=15)
HORIZON_DAYS = 8  # short enough to scan every quarter-hour of it
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2030, 12, 31, tzinfo=UTC)
PROFILE = ("US", "US-FL")  # synthetic: the country rule and the subdivision rule both apply


@functools.cache
def transitions() -> tuple[datetime, ...]:
    """Every DST transition of the test zones in 2024-2030, to within an hour."""
    found = []
    for key in ZONES:
        zone = ZoneInfo(key)
        moment = START
        while moment < END:
            if (moment + timedelta(hours=1)).astimezone(zone).utcoffset() != moment.astimezone(
                zone
            ).utcoffset():
                found.append(moment)
            moment += timedelta(hours=1)
    return tuple(found)


def quarter_time(index: int) -> time:
    return time(0) if index == 96 else time(index // 4, index % 4 * 15)


@st.composite
def day_hours(draw: st.DrawFn) -> DayHours:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return None  # banned that day
    if kind < 3:  # any span, however short
        start, end = sorted(draw(st.lists(st.integers(0, 96), min_size=2, max_size=2, unique=True)))
    else:  # a wide span, like the laws': overlaps across zones are then common
        start, end = draw(st.integers(0, 48)), draw(st.integers(49, 96))
    return quarter_time(start), quarter_time(end)


@st.composite
def rules(draw: st.DrawFn, region: str) -> RegionalRule:
    hours = draw(st.none() | st.tuples(*[day_hours()] * 7))
    cap = draw(st.none() | st.integers(1, 3))
    return RegionalRule(region, hours=hours, max_calls_per_24h=cap, holiday_ban=draw(st.booleans()))


@st.composite
def campaign_windows(draw: st.DrawFn) -> CampaignWindow:
    start, end = draw(st.integers(0, 95)), draw(st.integers(0, 95))
    if draw(st.booleans()):  # a wide window, or a whole day
        start, end = draw(st.integers(0, 40)), draw(st.integers(56, 96)) % 96
    days = draw(st.frozensets(st.integers(0, 6), min_size=1) | st.just(frozenset(range(7))))
    return CampaignWindow(draw(st.sampled_from(ZONES)), quarter_time(start), quarter_time(end), days)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    if draw(st.booleans()):
        seconds = draw(st.integers(0, int((END - START).total_seconds())))
        return START + timedelta(seconds=seconds)
    # Near a DST transition, where wall-time arithmetic goes wrong.
    base = draw(st.sampled_from(transitions()))
    return base + timedelta(seconds=draw(st.integers(-2 * 86400, 86400)))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[CalleeProfile, CampaignWindow, RuleBook, datetime, list[datetime]]:
    zones = tuple(draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True)))
    regions = draw(st.lists(st.sampled_from(PROFILE), min_size=1, unique=True))
    book = RuleBook([draw(rules(region)) for region in regions])
    now = draw(instants())
    grid_now = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0)
    dials = [grid_now - QUARTER * back for back in draw(st.lists(st.integers(0, 100), max_size=5))]
    return CalleeProfile(*PROFILE, zones), draw(campaign_windows()), book, now, dials


def reference_open(
    callee: CalleeProfile, window: CampaignWindow, book: RuleBook, moment: datetime, dials: list[datetime]
) -> bool:
    """Whether a call is legal at ``moment``, judged directly from the rules' wording."""
    local = moment.astimezone(ZoneInfo(window.timezone))
    clock, weekday, yesterday = local.time(), local.weekday(), (local.weekday() - 1) % 7
    if window.start == window.end:
        campaign = weekday in window.days
    elif window.start < window.end:
        campaign = weekday in window.days and window.start <= clock < window.end
    else:  # crosses midnight: tonight's window, or the tail of yesterday's
        campaign = (weekday in window.days and clock >= window.start) or (
            yesterday in window.days and clock < window.end
        )
    if not campaign:
        return False
    applicable = [rule for region in PROFILE if (rule := book.get(region)) is not None]
    for rule in applicable:
        for key in callee.zones:
            there = moment.astimezone(ZoneInfo(key))
            if rule.holiday_ban and rule.is_holiday(there.date()):
                return False
            if rule.hours is not None:
                hours = rule.hours[there.weekday()]
                if (
                    hours is None
                    or there.time() < hours[0]
                    or (hours[1] != time(0) and there.time() >= hours[1])
                ):
                    return False
            if rule.max_calls_per_24h is not None:
                recent = [dial for dial in dials if dial > moment - timedelta(hours=24)]
                if len(recent) >= rule.max_calls_per_24h:
                    return False
    return True


def reference_next_open(
    callee: CalleeProfile,
    window: CampaignWindow,
    book: RuleBook,
    now: datetime,
    dials: list[datetime],
    horizon: timedelta,
) -> datetime | None:
    """The first open instant in [now, now + horizon], by scanning the quarter-hour grid."""
    if reference_open(callee, window, book, now, dials):
        return now
    moment = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) + QUARTER
    while moment <= now + horizon:
        if reference_open(callee, window, book, moment, dials):
            return moment
        moment += QUARTER
    return None


@settings(max_examples=250, deadline=None, database=None)
@given(scenarios())
def test_decision_matches_the_reference_exactly(
    scenario: tuple[CalleeProfile, CampaignWindow, RuleBook, datetime, list[datetime]],
) -> None:
    callee, window, book, now, dials = scenario
    decision = check_window(callee, window, book, now, dials, horizon_days=HORIZON_DAYS)
    # Never open where any zone is outside its rule, and never closed where all allow it.
    assert decision.open == reference_open(callee, window, book, now, dials)
    assert window_open(callee, window, book, now, dials) == decision.open
    # The same agreement at many other instants of the horizon, off the grid, open and closed alike.
    for step in range(0, HORIZON_DAYS * 24 * 60, 97):
        moment = now + timedelta(minutes=step)
        assert window_open(callee, window, book, moment, dials) == reference_open(
            callee, window, book, moment, dials
        ), moment
    expected = reference_next_open(callee, window, book, now, dials, timedelta(days=HORIZON_DAYS))
    assert decision.next_open == expected
    if decision.next_open is not None:
        assert decision.next_open >= now
        assert check_window(callee, window, book, decision.next_open, dials).open


@settings(max_examples=120, deadline=None, database=None)
@given(scenarios())
def test_next_open_over_the_full_horizon_is_open_and_minimal(
    scenario: tuple[CalleeProfile, CampaignWindow, RuleBook, datetime, list[datetime]],
) -> None:
    callee, window, book, now, dials = scenario
    opening = check_window(callee, window, book, now, dials).next_open
    if opening is None:
        # Nothing in a year: then certainly nothing in the first days either.
        assert reference_next_open(callee, window, book, now, dials, timedelta(days=3)) is None
        return
    assert opening >= now
    assert reference_open(callee, window, book, opening, dials)
    # Minimal: no earlier open grid instant in the three days before it (bounded brute force).
    since = max(now, opening - timedelta(days=3))
    earlier = reference_next_open(callee, window, book, since, dials, opening - since)
    assert earlier == opening


@settings(max_examples=150, deadline=None, database=None)
@given(st.sampled_from(ZONES), st.integers(0, 95), instants())
def test_every_zone_opens_at_the_real_instant_of_its_local_start(key: str, start: int, now: datetime) -> None:
    """A rule opening at a local time opens at the instant whose wall clock shows it (after a gap)."""
    hours = (quarter_time(start), time(0))
    book = RuleBook([RegionalRule("US", hours=(hours,) * 7)])
    callee = CalleeProfile("US", None, (key,))
    always = CampaignWindow("UTC", time(0), time(0))
    opening = check_window(callee, always, book, now, horizon_days=3).next_open
    assert opening is not None
    local = opening.astimezone(ZoneInfo(key))
    if opening > now:
        # Either the wall clock shows the start exactly, or the start fell in a gap that just ended.
        just_before = (opening - timedelta(seconds=1)).astimezone(ZoneInfo(key))
        in_gap = just_before.utcoffset() != local.utcoffset()
        assert local.time() == hours[0] or (in_gap and local.time() > hours[0])
