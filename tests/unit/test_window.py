"""Calling windows on literal, timezone-aware instants: regional rules, campaign hours, DST, caps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialer.domain import CampaignWindow
from dialer.regions import CalleeProfile, RegionalRule, RuleBook, callee_profile, load_rules
from dialer.window import BlockReason, WindowDecision, check_window, next_open, window_open

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
TORONTO = ZoneInfo("America/Toronto")
KOLKATA = ZoneInfo("Asia/Kolkata")
LONDON = ZoneInfo("Europe/London")

ALWAYS = CampaignWindow("UTC", time(0), time(0))  # the campaign itself never closes
RULES = load_rules()

FLORIDA = callee_profile("+13055551234")
TEXAS = callee_profile("+12145551234")
CANADA = callee_profile("+14165551234")
INDIA = callee_profile("+919876543210")
UK = callee_profile("+442079460958")


def at(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


def closed(reason: BlockReason, opening: datetime | None) -> WindowDecision:
    return WindowDecision(open=False, reason=reason, next_open=opening)


def opened(now: datetime) -> WindowDecision:
    return WindowDecision(open=True, reason=None, next_open=now)


@pytest.mark.parametrize(
    ("callee", "now", "expected"),
    [
        # Florida: 08:00-20:00 (FTSA) inside the federal 08:00-21:00.
        (FLORIDA, at(NEW_YORK, 2025, 6, 4, 20, 30), "closed_regional_hours@2025-06-05T08:00"),
        (FLORIDA, at(NEW_YORK, 2025, 6, 4, 19, 59), "open"),
        (FLORIDA, at(NEW_YORK, 2025, 6, 4, 20, 0), "closed_regional_hours@2025-06-05T08:00"),
        (FLORIDA, at(NEW_YORK, 2025, 6, 4, 7, 59, 59), "closed_regional_hours@2025-06-04T08:00"),
        # Texas: noon on Sunday, 09:00 otherwise.
        (TEXAS, at(CHICAGO, 2025, 6, 8, 11, 0), "closed_regional_hours@2025-06-08T12:00"),
        (TEXAS, at(CHICAGO, 2025, 6, 8, 12, 30), "open"),
        (TEXAS, at(CHICAGO, 2025, 6, 7, 9, 30), "open"),
        (TEXAS, at(CHICAGO, 2025, 6, 7, 8, 30), "closed_regional_hours@2025-06-07T09:00"),
        (TEXAS, at(CHICAGO, 2025, 6, 7, 21, 0), "closed_regional_hours@2025-06-08T12:00"),
        # Canada: 09:00-21:30 weekdays, 10:00-18:00 weekends.
        (CANADA, at(TORONTO, 2025, 6, 7, 18, 30), "closed_regional_hours@2025-06-08T10:00"),
        (CANADA, at(TORONTO, 2025, 6, 7, 17, 59), "open"),
        (CANADA, at(TORONTO, 2025, 6, 6, 21, 15), "open"),
        (CANADA, at(TORONTO, 2025, 6, 6, 21, 30), "closed_regional_hours@2025-06-07T10:00"),
        (CANADA, at(TORONTO, 2025, 6, 8, 19, 0), "closed_regional_hours@2025-06-09T09:00"),
        # India: 09:00-21:00 IST, no DST.
        (INDIA, at(KOLKATA, 2025, 1, 6, 8, 59), "closed_regional_hours@2025-01-06T09:00"),
        (INDIA, at(KOLKATA, 2025, 1, 6, 9, 0), "open"),
        (INDIA, at(KOLKATA, 2025, 1, 6, 21, 0), "closed_regional_hours@2025-01-07T09:00"),
        # The UK has no hours rule: only the campaign window binds.
        (UK, at(LONDON, 2025, 1, 5, 3, 0), "open"),
        (UK, at(LONDON, 2025, 7, 5, 23, 59), "open"),
    ],
)
def test_regional_hours(callee: CalleeProfile, now: datetime, expected: str) -> None:
    decision = check_window(callee, ALWAYS, RULES, now)
    if expected == "open":
        assert decision == opened(now.astimezone(UTC))
        assert window_open(callee, ALWAYS, RULES, now)
        return
    label, _, local = expected.partition("@")
    reason = BlockReason(label.removeprefix("closed_"))
    opening = datetime.fromisoformat(local).replace(tzinfo=now.tzinfo).astimezone(UTC)
    assert decision == closed(reason, opening)
    assert not window_open(callee, ALWAYS, RULES, now)
    assert next_open(callee, ALWAYS, RULES, now) == opening


def test_next_open_is_utc_and_now_may_be_in_any_zone() -> None:
    now = at(ZoneInfo("Asia/Tokyo"), 2025, 6, 5, 9, 30)  # = 20:30 on the 4th in Miami
    decision = check_window(FLORIDA, ALWAYS, RULES, now)
    assert decision.next_open == datetime(2025, 6, 5, 12, 0, tzinfo=UTC)
    assert decision.next_open is not None and decision.next_open.tzinfo is UTC


def test_multi_zone_number_must_be_legal_in_every_zone() -> None:
    coasts = CalleeProfile("US", None, ("America/New_York", "America/Los_Angeles"))
    # 09:00 in New York is 06:00 in Los Angeles: closed until 08:00 in Los Angeles.
    decision = check_window(coasts, ALWAYS, RULES, at(NEW_YORK, 2025, 6, 4, 9, 0))
    assert decision == closed(BlockReason.REGIONAL_HOURS, at(LOS_ANGELES, 2025, 6, 4, 8, 0).astimezone(UTC))
    # 20:30 in New York is legal there until 21:00, and 17:30 in Los Angeles: open.
    assert window_open(coasts, ALWAYS, RULES, at(NEW_YORK, 2025, 6, 4, 20, 30))
    # 21:00 in New York closes it although Los Angeles is at 18:00; next opening 08:00 Los Angeles.
    decision = check_window(coasts, ALWAYS, RULES, at(NEW_YORK, 2025, 6, 4, 21, 0))
    assert decision.next_open == at(LOS_ANGELES, 2025, 6, 5, 8, 0).astimezone(UTC)


def test_toll_free_number_opens_only_where_every_nanp_zone_is_legal() -> None:
    toll_free = callee_profile("+18005551234")
    assert len(toll_free.zones) > 10
    decision = check_window(toll_free, ALWAYS, RULES, at(NEW_YORK, 2025, 6, 4, 12, 0))
    assert not decision.open
    # 08:00 in Guam (UTC+10) is 22:00 UTC: 18:00 New York, 19:30 St John's, 11:00 Pago Pago.
    assert decision.next_open == datetime(2025, 6, 4, 22, 0, tzinfo=UTC)
    assert window_open(toll_free, ALWAYS, RULES, datetime(2025, 6, 4, 22, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    "callee",
    [
        CalleeProfile("US", None, ()),
        callee_profile("+1907"),
        CalleeProfile("US", None, ("America/New_York", "Not/A_Zone")),
        CalleeProfile("US", None, ("../etc/passwd",)),
    ],
)
def test_unknown_zone_is_held(callee: CalleeProfile) -> None:
    now = at(NEW_YORK, 2025, 6, 4, 12, 0)
    assert check_window(callee, ALWAYS, RULES, now) == closed(BlockReason.UNKNOWN_TIMEZONE, None)
    assert not window_open(callee, ALWAYS, RULES, now)
    assert next_open(callee, ALWAYS, RULES, now) is None


def test_campaign_window_crossing_midnight() -> None:
    night = CampaignWindow("Europe/London", time(22), time(2), frozenset({0}))  # Monday 22:00 -> Tue 02:00
    assert check_window(UK, night, RULES, at(LONDON, 2025, 6, 2, 23, 0)).open  # Monday
    assert check_window(UK, night, RULES, at(LONDON, 2025, 6, 3, 1, 59)).open  # Tuesday morning
    next_monday = at(LONDON, 2025, 6, 9, 22, 0).astimezone(UTC)
    tuesday_two = check_window(UK, night, RULES, at(LONDON, 2025, 6, 3, 2, 0))
    assert tuesday_two == closed(BlockReason.CAMPAIGN_DAY, next_monday)
    monday_noon = check_window(UK, night, RULES, at(LONDON, 2025, 6, 2, 12, 0))
    assert monday_noon == closed(BlockReason.CAMPAIGN_HOURS, at(LONDON, 2025, 6, 2, 22, 0).astimezone(UTC))
    # Sunday 23:00 is not covered: Sunday's own window does not exist.
    assert not check_window(UK, night, RULES, at(LONDON, 2025, 6, 1, 23, 0)).open


def test_campaign_and_regional_windows_intersect() -> None:
    evening = CampaignWindow("America/Los_Angeles", time(15), time(23), frozenset(range(5)))
    # Friday 16:00 LA = 19:00 Miami: both open.
    assert window_open(FLORIDA, evening, RULES, at(LOS_ANGELES, 2025, 6, 6, 16, 0))
    # Friday 17:30 LA = 20:30 Miami: campaign open, Florida closed; Saturday/Sunday not campaign days,
    # so the next instant is Monday 15:00 LA (18:00 Miami).
    decision = check_window(FLORIDA, evening, RULES, at(LOS_ANGELES, 2025, 6, 6, 17, 30))
    assert decision == closed(BlockReason.REGIONAL_HOURS, at(LOS_ANGELES, 2025, 6, 9, 15, 0).astimezone(UTC))
    # The campaign is checked first: its reason wins when both are closed.
    decision = check_window(FLORIDA, evening, RULES, at(LOS_ANGELES, 2025, 6, 7, 23, 30))
    assert decision.reason is BlockReason.CAMPAIGN_DAY


def test_frequency_cap_three_per_24h() -> None:
    now = at(NEW_YORK, 2025, 6, 4, 12, 0)
    dials = [now - timedelta(hours=20), now - timedelta(hours=3), now - timedelta(hours=1)]
    assert check_window(FLORIDA, ALWAYS, RULES, now, dials[1:]).open
    decision = check_window(FLORIDA, ALWAYS, RULES, now, dials)
    assert decision == closed(BlockReason.FREQUENCY_CAP, (dials[0] + timedelta(hours=24)).astimezone(UTC))
    # A dial exactly 24 h old no longer counts.
    assert check_window(FLORIDA, ALWAYS, RULES, now, [now - timedelta(hours=24), *dials[1:]]).open
    # New York has no cap: the same history does not block there.
    assert check_window(callee_profile("+12125551234"), ALWAYS, RULES, now, dials).open


def test_frequency_cap_opening_outside_hours_waits_for_the_hours() -> None:
    now = at(NEW_YORK, 2025, 6, 4, 19, 0)
    dials = [at(NEW_YORK, 2025, 6, 3, 19, 30), now - timedelta(hours=2), now - timedelta(hours=1)]
    # Oldest dial + 24 h = 19:30, still within 08:00-20:00.
    assert check_window(FLORIDA, ALWAYS, RULES, now, dials).next_open == at(NEW_YORK, 2025, 6, 4, 19, 30)
    dials[0] = at(NEW_YORK, 2025, 6, 3, 20, 30)  # + 24 h = 20:30: Florida is closed by then
    decision = check_window(FLORIDA, ALWAYS, RULES, now, dials)
    assert decision == closed(BlockReason.FREQUENCY_CAP, at(NEW_YORK, 2025, 6, 5, 8, 0).astimezone(UTC))


def test_spring_forward_opening_is_the_real_instant() -> None:
    # 2025-03-09: New York clocks jump from 02:00 EST to 03:00 EDT; 08:00 that day is 12:00 UTC.
    decision = check_window(FLORIDA, ALWAYS, RULES, at(NEW_YORK, 2025, 3, 9, 1, 0))
    assert decision.next_open == datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
    decision = check_window(FLORIDA, ALWAYS, RULES, datetime(2025, 11, 2, 5, 30, tzinfo=UTC))
    assert decision.next_open == datetime(2025, 11, 2, 13, 0, tzinfo=UTC)  # 08:00 EST after fall-back


def test_start_in_a_spring_forward_gap_opens_after_the_gap() -> None:
    window = CampaignWindow("America/New_York", time(2, 30), time(5), frozenset({6}))  # Sundays
    decision = check_window(UK, window, RULES, at(NEW_YORK, 2025, 3, 9, 1, 0))
    # 02:30 does not exist that night; the first valid instant after the gap is 03:00 EDT.
    assert decision == closed(BlockReason.CAMPAIGN_HOURS, datetime(2025, 3, 9, 7, 0, tzinfo=UTC))


def test_fall_back_replays_the_window() -> None:
    window = CampaignWindow("America/New_York", time(1, 30), time(1, 45))
    first = datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert check_window(UK, window, RULES, first).open
    after_first = datetime(2025, 11, 2, 5, 50, tzinfo=UTC)  # 01:50 EDT
    second = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST, the clock's second pass
    assert check_window(UK, window, RULES, after_first) == closed(BlockReason.CAMPAIGN_HOURS, second)


def test_holiday_ban(tmp_path: Path) -> None:
    extra = tmp_path / "rules.toml"
    extra.write_text('[[rule]]\nregion = "US-FL"\nholiday_ban = true\n', encoding="utf-8")
    rules = load_rules(extra)
    decision = check_window(FLORIDA, ALWAYS, rules, at(NEW_YORK, 2025, 7, 4, 12, 0))
    assert decision == closed(BlockReason.HOLIDAY, at(NEW_YORK, 2025, 7, 5, 8, 0).astimezone(UTC))
    assert check_window(FLORIDA, ALWAYS, RULES, at(NEW_YORK, 2025, 7, 4, 12, 0)).open


def test_banned_day_and_never_opening() -> None:
    no_sunday = RuleBook([RegionalRule("US", hours=((time(8), time(21)),) * 6 + (None,), source="test")])
    decision = check_window(FLORIDA, ALWAYS, no_sunday, at(NEW_YORK, 2025, 6, 8, 12, 0))
    assert decision == closed(BlockReason.REGIONAL_DAY, at(NEW_YORK, 2025, 6, 9, 8, 0).astimezone(UTC))
    never = CampaignWindow("UTC", time(9), time(17), frozenset())
    assert check_window(FLORIDA, never, RULES, at(NEW_YORK, 2025, 6, 8, 12, 0)) == closed(
        BlockReason.NEVER_OPENS, None
    )
    # An opening beyond the horizon counts as none.
    late = check_window(FLORIDA, ALWAYS, RULES, at(NEW_YORK, 2025, 6, 8, 21, 0), horizon_days=0)
    assert late == closed(BlockReason.NEVER_OPENS, None)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_window(FLORIDA, ALWAYS, RULES, datetime(2025, 6, 4, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        window_open(FLORIDA, ALWAYS, RULES, at(NEW_YORK, 2025, 6, 4, 12), [datetime(2025, 6, 4, 11)])


def test_unknown_campaign_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="campaign window's timezone"):
        check_window(
            FLORIDA, CampaignWindow("Mars/Olympus", time(9), time(17)), RULES, at(NEW_YORK, 2025, 6, 4)
        )
