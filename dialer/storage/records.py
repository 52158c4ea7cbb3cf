"""Frozen records and errors the SQL store hands out, and how rows become domain records."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, fields
from datetime import datetime, time
from typing import Any
from uuid import UUID

from sqlalchemy.engine import RowMapping

from dialer.domain import WEEKDAYS, AmdSettings, CampaignStatus, Prospect, ProspectState
from dialer.outcome import Outcome


class Conflict(ValueError):
    """The record already exists (same number, trunk name, ...) or the request is ambiguous."""


def weekday_name(day: str) -> str:
    """The canonical name of a weekday given in full or as three letters, any case (``"mon"``)."""
    for name in WEEKDAYS:
        if day.strip().lower() in (name.lower(), name[:3].lower()):
            return name
    raise ValueError(f"unknown weekday {day!r}")


#: What a campaign's opt-out digit may be: one RFC 2833 key of a phone's keypad.
OPT_OUT_DIGITS = frozenset("0123456789*#")


@dataclass(frozen=True)
class CampaignSpec:
    """A campaign's settings: the seed's POST /campaigns body without ``candidates``/``from_numbers``.

    Capacity and retry defaults follow the seed's example; ``default_region`` None means the tenant's.
    """

    name: str
    agent_id: UUID | None = None
    provider: str = ""  # a trunk name of the tenant restricts caller IDs to that trunk
    timezone: str = "UTC"
    call_hours_start: time = time(9, 0)
    call_hours_end: time = time(18, 0)
    call_days: tuple[str, ...] = WEEKDAYS[:5]
    max_concurrent_calls: int = 5
    call_timeout_seconds: int = 60
    use_vanira_managed: bool = False
    retry_failed_calls: bool = True
    max_retries_failed: int = 3
    retry_delay_failed_seconds: int = 300
    retry_busy_calls: bool = True
    max_retries_busy: int = 2
    retry_delay_busy_seconds: int = 180
    retry_no_answer_calls: bool = True
    max_retries_no_answer: int = 3
    retry_delay_no_answer_seconds: int = 600
    allow_reschedule: bool = True
    max_reschedules_per_prospect: int = 3
    reschedule_min_delay_hours: float = 1.0
    is_hr_campaign: bool = False
    default_region: str | None = None
    opt_out_digit: str | None = None  # DTMF the callee presses to be put on the tenant's DNC list
    record: bool = False  # record the callee and the voice worker (docs/recordings.md)
    retry_voicemail_calls: bool = True
    max_retries_voicemail: int = 2
    retry_delay_voicemail_seconds: int = 3600
    amd: str = "off"  # answering-machine detection (docs/amd.md)
    amd_timeout_seconds: int = 30
    amd_async: bool = False
    amd_on_machine: str = "hangup"
    amd_message_url: str | None = None

    def __post_init__(self) -> None:
        # Fail at the edge: a bad zone or day name stored here would break every dispatch tick later.
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        object.__setattr__(self, "call_days", tuple(weekday_name(d) for d in self.call_days))
        if self.opt_out_digit is not None and self.opt_out_digit not in OPT_OUT_DIGITS:
            raise ValueError("opt_out_digit must be one DTMF digit: 0-9, * or #")
        self.amd_settings()  # ValueError for a mode, action or missing message it refuses

    def amd_settings(self) -> AmdSettings:
        """The campaign's answering-machine detection as the dialer and the gateway read it."""
        return AmdSettings(
            self.amd, self.amd_timeout_seconds, self.amd_async, self.amd_on_machine, self.amd_message_url
        )


SPEC_FIELDS = tuple(f.name for f in fields(CampaignSpec))


@dataclass(frozen=True)
class CampaignRecord:
    """A stored campaign: its settings plus lifecycle columns."""

    id: UUID
    tenant_id: UUID
    spec: CampaignSpec
    status: CampaignStatus
    scheduled_start_time: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class TrunkSpec:
    """A SIP trunk's connection settings and caps, as created and as the SIP layer reads them."""

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    username: str | None = None
    password: str | None = None
    register: bool = False
    outbound_proxy: str | None = None
    max_concurrent_calls: int = 10
    max_cps: float = 1.0
    refer_supported: bool = True
    refer_uri_style: str = "sip"  # sip | tel
    allowed_countries: tuple[str, ...] = ()
    accept_inbound_refer: bool = False
    inbound_cidrs: tuple[str, ...] = ()  # sources of inbound INVITEs besides the host's addresses


@dataclass(frozen=True)
class TrunkRecord:
    """A stored trunk."""

    id: UUID
    tenant_id: UUID
    spec: TrunkSpec


@dataclass(frozen=True)
class NumberRecord:
    """A stored phone number (DID), the fields of the seed's GET /phone-numbers."""

    id: UUID
    tenant_id: UUID
    number: str
    country: str
    trunk_id: UUID
    agent_id: UUID | None
    label: str
    max_concurrent_calls: int
    daily_cap: int | None
    active: bool
    managed: bool
    created_at: datetime


@dataclass(frozen=True)
class TenantRecord:
    """A tenant as the CLI lists it."""

    id: UUID
    name: str
    default_region: str
    max_call_duration_seconds: int
    created_at: datetime
    recording_retention_days: int | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key, without its secret (only the display prefix is kept in clear)."""

    id: UUID
    tenant_id: UUID
    prefix: str
    scope: str  # secret | publishable
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class OpenCall:
    """A call outside any campaign not ended yet, as single-call reconciliation sees it."""

    id: UUID
    direction: str
    from_did_id: UUID | None
    lease_token: int | None  # set once an API call is placed under a DID/trunk lease
    created_at: datetime


@dataclass(frozen=True)
class AttemptRecord:
    """One call as stored: every column of the attempts table."""

    id: UUID
    tenant_id: UUID
    campaign_id: UUID | None
    prospect_id: UUID | None
    attempt_number: int
    direction: str
    from_did_id: UUID | None
    from_number: str
    to_number: str
    trunk_id: UUID | None
    agent_id: UUID | None
    sip_worker: str | None
    lease_token: int | None
    status: str
    outcome: Outcome | None
    sip_code: int | None
    reason: str | None
    q850_cause: int | None
    created_at: datetime
    invited_at: datetime | None
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    pdd_ms: float | None
    transfer_to: str | None
    transfer_method: str | None
    transfer_result: str | None
    transfer_started_at: datetime | None  # the transfer was asked for (or the far end's REFER came)
    transfer_ended_at: datetime | None  # it settled: REFER final NOTIFY, human bridged, or failed
    transfers: list[dict[str, Any]]  # every transfer, in order (dialer/transfers.py); the above: the last
    worker_connected_at: datetime | None  # the voice worker got ``start`` (abandonment)
    callee_name: str | None  # the prospect's name, or ``sip_data.name`` of an API call
    record: bool = False  # asked to be recorded
    recording_location: str | None = None  # local path or s3://bucket/key of the WAV; None: none
    recording_at: datetime | None = None
    recording_seconds: float | None = None
    recording_deleted_at: datetime | None = None  # deleted by the tenant's retention
    answered_by: str | None = None  # the answering-machine verdict, when detection ran
    amd: dict[str, Any] | None = None  # an API call's AmdSettings fields (None: no detection)


#: The prospects columns a domain Prospect is built from (the hot query reads only these).
PROSPECT_COLUMNS = (
    "id",
    "campaign_id",
    "tenant_id",
    "name",
    "phone",
    "state",
    "next_attempt_at",
    "attempts_busy",
    "attempts_no_answer",
    "attempts_failed",
    "attempts_voicemail",
    "total_attempts",
    "reschedules",
    "last_outcome",
    "custom",
)


def prospect_from_row(row: RowMapping) -> Prospect:
    """A domain Prospect from a prospects row."""
    return Prospect(
        id=row["id"],
        campaign_id=row["campaign_id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        phone=row["phone"],
        state=ProspectState(row["state"]),
        next_attempt_at=row["next_attempt_at"],
        attempts_busy=row["attempts_busy"],
        attempts_no_answer=row["attempts_no_answer"],
        attempts_failed=row["attempts_failed"],
        attempts_voicemail=row["attempts_voicemail"],
        total_attempts=row["total_attempts"],
        reschedules=row["reschedules"],
        last_outcome=Outcome(row["last_outcome"]) if row["last_outcome"] else None,
        custom=dict(row["custom"] or {}),
    )


def campaign_from_row(row: RowMapping) -> CampaignRecord:
    """A CampaignRecord from a campaigns row."""
    spec = CampaignSpec(
        **{name: row[name] for name in SPEC_FIELDS if name != "call_days"}, call_days=tuple(row["call_days"])
    )
    return CampaignRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        spec=spec,
        status=CampaignStatus(row["status"]),
        scheduled_start_time=row["scheduled_start_time"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


def attempt_from_row(row: RowMapping) -> AttemptRecord:
    """An AttemptRecord from an attempts row."""
    values = {f.name: row[f.name] for f in fields(AttemptRecord)}
    values["outcome"] = Outcome(row["outcome"]) if row["outcome"] else None
    values["transfers"] = list(row["transfers"] or [])
    return AttemptRecord(**values)
