"""Retry policy: after an attempt, decide the prospect's next attempt time or its terminal state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from dialer.domain import Prospect, ProspectState, ProspectUpdate, RetryPolicy
from dialer.outcome import REACHED_OUTCOMES, Outcome, retry_bucket

#: Moves a proposed attempt time to the next instant the calling window is open (None: never opens).
Snap = Callable[[datetime], datetime | None]
#: The hold reason of a prospect whose next attempt no opening of the calling window can take.
WINDOW_NEVER_OPENS = "calling window never opens"


class RescheduleRefused(ValueError):
    """A reschedule request the campaign's policy does not allow; ``code`` is machine readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def after_attempt(
    prospect: Prospect,
    outcome: Outcome,
    policy: RetryPolicy,
    now: datetime,
    snap: Snap | None = None,
    *,
    not_before: datetime | None = None,
) -> ProspectUpdate:
    """What happens to ``prospect`` after an attempt that ended in ``outcome`` at ``now``.

    ``prospect`` carries the history *before* this attempt. Per-outcome counting follows the seed's
    fields: ``max_retries_busy = 2`` allows two more attempts after the first busy, so the third busy
    is terminal. Counts are per bucket (busy, no_answer, failed), not shared. ``not_before`` holds
    the next attempt back further: a lost call (``unknown``) may still be up at the carrier until
    ``orphan_gone_at``.
    """
    _require_aware(now)
    if outcome in REACHED_OUTCOMES:
        return ProspectUpdate(ProspectState.COMPLETED, None, outcome)
    bucket = retry_bucket(outcome)
    if bucket is None:
        return ProspectUpdate(ProspectState.FAILED, None, outcome, reason=f"final outcome {outcome.value}")
    rule = policy.rule(bucket)
    if not rule.enabled:
        return ProspectUpdate(ProspectState.FAILED, None, outcome, reason=f"retries disabled for {bucket}")
    seen = prospect.attempts_for(bucket) + 1
    if seen > rule.max_retries:
        return ProspectUpdate(ProspectState.FAILED, None, outcome, reason=f"{bucket} retries exhausted")
    proposed = now + timedelta(seconds=max(0, rule.delay_seconds))
    if not_before is not None:
        _require_aware(not_before)
        proposed = max(proposed, not_before)
    return _pending_at(proposed, outcome, snap)


def orphan_gone_at(started_at: datetime, max_call_seconds: float) -> datetime:
    """When a call we lost track of (its node or SIP worker died: no BYE was sent) is surely over.

    Nothing on our side hangs it up any more, so the carrier may keep it until the longest a call
    may last (DIALER_MAX_CALL_SECONDS) has passed since it started; calling the same person before
    that could ring them while the old call is still up. (Session timers let a carrier that supports
    them end it sooner, but not every carrier does: this is the bound that holds for all.)
    """
    _require_aware(started_at)
    return started_at + timedelta(seconds=max_call_seconds)


def reschedule(
    prospect: Prospect, requested: datetime, policy: RetryPolicy, now: datetime, snap: Snap | None = None
) -> ProspectUpdate:
    """A callee (or the worker on their behalf) asked to be called back at ``requested``.

    Honours ``allow_reschedule``, ``max_reschedules_per_prospect`` and ``reschedule_min_delay_hours``;
    a time inside the minimum delay is refused, not silently moved, so the caller can say so.
    """
    _require_aware(now)
    _require_aware(requested)
    if not policy.allow_reschedule:
        raise RescheduleRefused("RESCHEDULE_NOT_ALLOWED", "this campaign does not allow reschedules")
    if prospect.reschedules >= policy.max_reschedules_per_prospect:
        raise RescheduleRefused("RESCHEDULE_LIMIT", "the prospect has used all its reschedules")
    earliest = now + timedelta(hours=policy.reschedule_min_delay_hours)
    if requested < earliest:
        raise RescheduleRefused(
            "RESCHEDULE_TOO_SOON",
            f"a reschedule must be at least {policy.reschedule_min_delay_hours:g} h ahead",
        )
    outcome = prospect.last_outcome or Outcome.ANSWERED
    return _pending_at(requested, outcome, snap)


def _pending_at(proposed: datetime, outcome: Outcome, snap: Snap | None) -> ProspectUpdate:
    if snap is None:
        return ProspectUpdate(ProspectState.PENDING, proposed, outcome, not_before=proposed)
    opening = snap(proposed)
    if opening is None:
        return ProspectUpdate(
            ProspectState.HELD, None, outcome, reason=WINDOW_NEVER_OPENS, not_before=proposed
        )
    return ProspectUpdate(ProspectState.PENDING, max(opening, proposed), outcome, not_before=proposed)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
