"""Plain, frozen records the dialing brain works on; storage adapters build them, the core reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any
from uuid import UUID

from dialer.outcome import Outcome

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CampaignStatus(StrEnum):
    """Lifecycle of a campaign, the seed's status values."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class ProspectState(StrEnum):
    """Where a prospect stands in its campaign."""

    PENDING = "pending"  # waiting for next_attempt_at
    DIALING = "dialing"  # an attempt is in flight
    HELD = "held"  # cannot be dialled until an operator acts (e.g. no known time zone)
    COMPLETED = "completed"  # reached (answered / transferred): terminal
    FAILED = "failed"  # retries exhausted or a final failure: terminal
    DNC = "dnc"  # on the do-not-call list: terminal
    REMOVED = "removed"  # deleted from the campaign by an operator: terminal


TERMINAL_STATES = frozenset(
    {ProspectState.COMPLETED, ProspectState.FAILED, ProspectState.DNC, ProspectState.REMOVED}
)


@dataclass(frozen=True)
class CampaignWindow:
    """When a campaign may call: local hours on given weekdays in one IANA zone.

    ``days`` holds weekday numbers (Monday = 0). A window whose ``end`` is earlier than ``start``
    crosses midnight and belongs to the day it starts on; ``start == end`` means the whole day.
    """

    timezone: str
    start: time
    end: time
    days: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True)
class RetryRule:
    """The campaign's retry setting for one outcome bucket (failed, busy, no_answer, voicemail)."""

    enabled: bool
    max_retries: int
    delay_seconds: int


@dataclass(frozen=True)
class RetryPolicy:
    """A campaign's retry and reschedule settings, the seed's field names grouped by outcome."""

    failed: RetryRule = RetryRule(True, 3, 300)
    busy: RetryRule = RetryRule(True, 2, 180)
    no_answer: RetryRule = RetryRule(True, 3, 600)
    voicemail: RetryRule = RetryRule(True, 2, 3600)  # an answering machine took the call
    allow_reschedule: bool = True
    max_reschedules_per_prospect: int = 3
    reschedule_min_delay_hours: float = 1.0

    def rule(self, bucket: str) -> RetryRule:
        """The rule for a bucket name as returned by ``outcome.retry_bucket``."""
        rule: RetryRule = getattr(self, bucket)
        return rule


#: Answering-machine detection: off, the first verdict only, or also the greeting's end (beep or silence).
AMD_MODES = ("off", "detect", "detect_and_wait_for_beep")
#: What an answering machine gets: a hang-up, the message played after its greeting, or the voice worker.
AMD_ACTIONS = ("hangup", "leave_message", "worker")


@dataclass(frozen=True)
class AmdSettings:
    """Answering-machine detection for a call (a campaign's, or one API call's); docs/amd.md.

    ``asynchronous``: the voice worker gets the call at the answer and the verdict as an event, instead
    of after the verdict (in ``start.customParameters.answered_by``). ``leave_message`` waits for the
    greeting's end in either mode, then plays ``message_url`` (fetched once by the gateway) and hangs up.
    """

    mode: str = "off"
    timeout_seconds: int = 30  # Twilio's MachineDetectionTimeout default
    asynchronous: bool = False
    on_machine: str = "hangup"
    message_url: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in AMD_MODES:
            raise ValueError(f"amd must be one of {', '.join(AMD_MODES)}")
        if self.on_machine not in AMD_ACTIONS:
            raise ValueError(f"amd_on_machine must be one of {', '.join(AMD_ACTIONS)}")
        if self.mode != "off" and self.on_machine == "leave_message" and not self.message_url:
            raise ValueError("amd_on_machine leave_message needs amd_message_url")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


@dataclass(frozen=True)
class Trunk:
    """A SIP trunk as the allocator sees it: its caps and where it may call."""

    id: UUID
    name: str
    max_concurrent_calls: int
    max_cps: float
    allowed_countries: frozenset[str] = frozenset()  # ISO 3166 alpha-2; empty = any


@dataclass(frozen=True)
class Did:
    """A caller-ID number (DID) allocated to a campaign, with its own caps."""

    id: UUID
    number: str  # E.164
    trunk_id: UUID
    max_concurrent_calls: int = 1
    daily_cap: int | None = None
    active: bool = True


@dataclass(frozen=True)
class CampaignPlan:
    """Everything the dispatch loop needs to know about one campaign, read once per tick."""

    id: UUID
    tenant_id: UUID
    status: CampaignStatus
    window: CampaignWindow
    retry: RetryPolicy
    max_concurrent_calls: int
    call_timeout_seconds: int
    agent_id: UUID | None
    dids: tuple[Did, ...]
    trunks: tuple[Trunk, ...]
    default_region: str = "US"
    record: bool = False  # record its calls (docs/recordings.md)
    amd: AmdSettings = AmdSettings()


@dataclass(frozen=True)
class Prospect:
    """One person to call in a campaign, with the history the retry policy needs."""

    id: UUID
    campaign_id: UUID
    tenant_id: UUID
    name: str
    phone: str  # E.164
    state: ProspectState = ProspectState.PENDING
    next_attempt_at: datetime | None = None
    attempts_busy: int = 0
    attempts_no_answer: int = 0
    attempts_failed: int = 0
    attempts_voicemail: int = 0
    total_attempts: int = 0
    reschedules: int = 0
    last_outcome: Outcome | None = None
    custom: dict[str, Any] = field(default_factory=dict)

    def attempts_for(self, bucket: str) -> int:
        """How many attempts ended in the given retry bucket."""
        count: int = getattr(self, f"attempts_{bucket}")
        return count


@dataclass(frozen=True)
class NewAttempt:
    """An attempt about to be dialled: written to storage before the INVITE leaves."""

    id: UUID
    tenant_id: UUID
    campaign_id: UUID
    prospect_id: UUID
    attempt_number: int
    from_did_id: UUID
    from_number: str
    to_number: str
    trunk_id: UUID
    lease_token: int
    created_at: datetime


@dataclass(frozen=True)
class AttemptResult:
    """How an attempt ended, as recorded on its row."""

    outcome: Outcome
    ended_at: datetime
    sip_code: int | None = None
    reason: str | None = None
    q850_cause: int | None = None
    invited_at: datetime | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    sip_worker: str | None = None
    answered_by: str | None = None  # the answering-machine detector's verdict (sip/amd.py), if it ran


@dataclass(frozen=True)
class OpenAttempt:
    """An attempt not ended yet, as reconciliation sees it: its prospect and its lease token."""

    attempt_id: UUID
    prospect: Prospect
    lease_token: int | None
    started_at: datetime | None = None  # when the attempt was written, just before its INVITE


@dataclass(frozen=True)
class ProspectUpdate:
    """What the retry policy decided for a prospect after an attempt.

    ``not_before`` is the earliest the policy allows the next attempt (the retry delay or the asked
    reschedule time) before the calling window moved it to ``next_attempt_at``: when the campaign's
    window changes, the prospect is re-planned from it, never earlier.
    """

    state: ProspectState
    next_attempt_at: datetime | None
    last_outcome: Outcome
    reason: str | None = None
    not_before: datetime | None = None
