"""Re-planning a campaign's waiting prospects when its calling window changes.

The dispatcher moves a prospect it may not call yet to the window's next opening (``next_attempt_at``),
so a prospect deferred by the old window would wait for the old opening even once a PATCH has opened
the window now. Re-planning makes those prospects due again at once, where the dispatcher checks the
new window (and every regional rule) before any call: a prospect still outside it is deferred again,
to the new window's opening. A prospect waiting for its retry delay becomes due at ``not_before`` (the
retry policy's time before the window moved it), never earlier.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from dialer.domain import CampaignStatus, ProspectState
from dialer.retry import WINDOW_NEVER_OPENS
from dialer.storage.tables import UtcDateTime, campaigns, prospects
from dialer.window import BlockReason

#: The campaign settings that make up its calling window.
WINDOW_FIELDS = frozenset({"timezone", "call_hours_start", "call_hours_end", "call_days"})
# Holds a new window may lift. A number with no known time zone stays held: no window opens for it.
_WINDOW_HOLDS = [r.value for r in BlockReason if r is not BlockReason.UNKNOWN_TIMEZONE] + [WINDOW_NEVER_OPENS]
_PENDING = ProspectState.PENDING.value
_HELD = ProspectState.HELD.value


def replan_window(conn: sa.Connection, campaign_id: UUID, now: datetime) -> int:
    """Make the campaign's window-deferred prospects due at ``now`` or their retry time; how many.

    Left alone: prospects due already, prospects at their retry time (the window did not move them),
    prospects retried before ``not_before`` was kept (their retry time is unknown), and every prospect
    of a completed campaign (it never dials again: a lifted hold would only show as pending).
    """
    status = conn.scalar(sa.select(campaigns.c.status).where(campaigns.c.id == campaign_id))
    if status in (None, CampaignStatus.COMPLETED.value):
        return 0
    not_before = prospects.c.not_before
    earliest = sa.case((not_before > now, not_before), else_=sa.literal(now, UtcDateTime()))
    deferred = sa.and_(
        prospects.c.state == _PENDING,
        prospects.c.next_attempt_at > now,
        sa.or_(not_before.is_(None), prospects.c.next_attempt_at > not_before),
    )
    held = sa.and_(prospects.c.state == _HELD, prospects.c.hold_reason.in_(_WINDOW_HOLDS))
    result = conn.execute(
        sa.update(prospects)
        .where(
            prospects.c.campaign_id == campaign_id,
            sa.or_(deferred, held),
            sa.or_(not_before.is_not(None), prospects.c.total_attempts == 0),
        )
        .values(state=_PENDING, hold_reason=None, next_attempt_at=earliest, updated_at=now)
    )
    return result.rowcount
