"""Retry policy: per-outcome maxima and delays, terminal outcomes, reschedules, window snapping."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from dialer.domain import Prospect, ProspectState, RetryPolicy, RetryRule
from dialer.outcome import Outcome
from dialer.retry import RescheduleRefused, after_attempt, orphan_gone_at, reschedule

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    failed=RetryRule(True, 3, 300),
    busy=RetryRule(True, 2, 180),
    no_answer=RetryRule(True, 3, 600),
    allow_reschedule=True,
    max_reschedules_per_prospect=2,
    reschedule_min_delay_hours=1,
)


def prospect(**history: int) -> Prospect:
    return Prospect(uuid4(), uuid4(), uuid4(), "A", "+12025550100", **history)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("history", "outcome", "state", "delay"),
    [
        ({}, Outcome.BUSY, ProspectState.PENDING, 180),
        ({"attempts_busy": 1}, Outcome.BUSY, ProspectState.PENDING, 180),
        ({"attempts_busy": 2}, Outcome.BUSY, ProspectState.FAILED, None),  # third busy: 2 retries used
        ({"attempts_busy": 2}, Outcome.NO_ANSWER, ProspectState.PENDING, 600),  # buckets are separate
        ({"attempts_no_answer": 3}, Outcome.NO_ANSWER, ProspectState.FAILED, None),
        ({}, Outcome.FAILED, ProspectState.PENDING, 300),
        ({}, Outcome.CAPACITY, ProspectState.PENDING, 300),
        ({}, Outcome.UNKNOWN, ProspectState.PENDING, 300),
        ({"attempts_failed": 3}, Outcome.UNKNOWN, ProspectState.FAILED, None),
        ({}, Outcome.ANSWERED, ProspectState.COMPLETED, None),
        ({}, Outcome.TRANSFERRED, ProspectState.COMPLETED, None),
        ({}, Outcome.REJECTED, ProspectState.FAILED, None),
        ({}, Outcome.INVALID_NUMBER, ProspectState.FAILED, None),
        ({}, Outcome.VOICEMAIL, ProspectState.PENDING, 3600),
        ({"attempts_voicemail": 2}, Outcome.VOICEMAIL, ProspectState.FAILED, None),
        ({"attempts_no_answer": 3}, Outcome.VOICEMAIL, ProspectState.PENDING, 3600),
    ],
)
def test_after_attempt_table(
    history: dict[str, int], outcome: Outcome, state: ProspectState, delay: int | None
) -> None:
    update = after_attempt(prospect(**history), outcome, POLICY, NOW)
    assert update.state is state
    assert update.last_outcome is outcome
    if delay is None:
        assert update.next_attempt_at is None
    else:
        assert update.next_attempt_at == NOW + timedelta(seconds=delay)


def test_disabled_bucket_is_terminal() -> None:
    policy = replace(POLICY, busy=RetryRule(False, 5, 60))
    update = after_attempt(prospect(), Outcome.BUSY, policy, NOW)
    assert update.state is ProspectState.FAILED
    assert update.reason is not None and "disabled" in update.reason


def test_zero_max_retries_means_one_attempt() -> None:
    policy = replace(POLICY, no_answer=RetryRule(True, 0, 60))
    assert after_attempt(prospect(), Outcome.NO_ANSWER, policy, NOW).state is ProspectState.FAILED


def test_retry_outside_window_moves_to_next_opening() -> None:
    opening = NOW + timedelta(hours=17)
    update = after_attempt(prospect(), Outcome.BUSY, POLICY, NOW, snap=lambda _t: opening)
    assert update.next_attempt_at == opening
    # The retry time itself is kept: a new window re-plans from it, never earlier.
    assert update.not_before == NOW + timedelta(seconds=180)


def test_retry_inside_window_keeps_the_delay() -> None:
    update = after_attempt(prospect(), Outcome.BUSY, POLICY, NOW, snap=lambda t: t)
    assert update.next_attempt_at == update.not_before == NOW + timedelta(seconds=180)


def test_window_that_never_opens_holds_the_prospect() -> None:
    update = after_attempt(prospect(), Outcome.BUSY, POLICY, NOW, snap=lambda _t: None)
    assert update.state is ProspectState.HELD
    assert update.next_attempt_at is None and update.not_before == NOW + timedelta(seconds=180)


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        after_attempt(prospect(), Outcome.BUSY, POLICY, NOW.replace(tzinfo=None))


def test_reschedule_rules() -> None:
    later = NOW + timedelta(hours=2)
    assert reschedule(prospect(), later, POLICY, NOW).next_attempt_at == later
    with pytest.raises(RescheduleRefused) as too_soon:
        reschedule(prospect(), NOW + timedelta(minutes=30), POLICY, NOW)
    assert too_soon.value.code == "RESCHEDULE_TOO_SOON"
    with pytest.raises(RescheduleRefused) as limit:
        reschedule(prospect(reschedules=2), later, POLICY, NOW)
    assert limit.value.code == "RESCHEDULE_LIMIT"
    with pytest.raises(RescheduleRefused) as off:
        reschedule(prospect(), later, replace(POLICY, allow_reschedule=False), NOW)
    assert off.value.code == "RESCHEDULE_NOT_ALLOWED"


def test_a_lost_call_is_not_retried_before_it_is_surely_over() -> None:
    started = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    now = started + timedelta(minutes=2)
    gone = orphan_gone_at(started, 3600)
    assert gone == started + timedelta(hours=1)
    update = after_attempt(prospect(), Outcome.UNKNOWN, POLICY, now, not_before=gone)
    assert (update.state, update.next_attempt_at) == (ProspectState.PENDING, gone)
    # A failed-call delay longer than the bound wins.
    slow = RetryPolicy(failed=RetryRule(True, 3, 7200))
    assert after_attempt(prospect(), Outcome.UNKNOWN, slow, now, not_before=gone).next_attempt_at == (
        now + timedelta(hours=2)
    )
