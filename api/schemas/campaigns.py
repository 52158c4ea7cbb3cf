"""Campaign request bodies and responses, field for field as the seed's Campaigns section."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from api.schemas.amd import AmdAction, AmdMessageUrl, AmdMode
from dialer.domain import WEEKDAYS
from dialer.storage.records import weekday_name

_DEFAULT_DAYS = list(WEEKDAYS[:5])
#: Longest wait between two attempts of a prospect (30 days); also keeps values in a 32-bit column.
MAX_RETRY_DELAY_SECONDS = 30 * 86400


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a wall-clock time without offset (HH:MM:SS): the campaign's timezone applies")
    return value


#: The seed's ``HH:MM:SS``. Not JSON Schema's ``format: time``: that is RFC 3339's, which needs an
#: offset, while a calling hour is wall-clock time in the campaign's own zone.
ClockTime = Annotated[
    time,
    AfterValidator(_wall_clock),
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
            "examples": ["09:00:00"],
        }
    ),
]


def zone_problem(zone: str) -> str | None:
    """Why ``zone`` is no IANA time zone, or None when it is one."""
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {zone!r} (an IANA name like Europe/London)"
    return None


class Candidate(BaseModel):
    """One prospect of the seed's ``candidates``; any extra field is kept as the prospect's custom data."""

    model_config = ConfigDict(extra="allow")
    name: str = ""
    phone: str


class CampaignSettings(BaseModel):
    """Every campaign setting, optional; shared by Create (with defaults) and Update (none given)."""

    model_config = ConfigDict(extra="forbid")
    provider: str | None = Field(None, description="a trunk name of yours restricts dialling to it")
    timezone: str | None = Field(
        None, examples=["Asia/Kolkata"], description="IANA zone of the calling window (default UTC)"
    )
    call_hours_start: ClockTime | None = Field(
        None, examples=["09:00:00"], description="calling window opens, campaign time (default 09:00:00)"
    )
    call_hours_end: ClockTime | None = Field(
        None,
        examples=["18:00:00"],
        description="calling window closes (default 18:00:00); before the start: crosses midnight",
    )
    call_days: list[str] | None = Field(
        None, examples=[_DEFAULT_DAYS], description="days the window opens (default Monday to Friday)"
    )
    max_concurrent_calls: int | None = Field(None, ge=1, le=1000)
    call_timeout_seconds: int | None = Field(None, ge=5, le=600)
    use_vanira_managed: bool | None = None
    retry_failed_calls: bool | None = None
    max_retries_failed: int | None = Field(None, ge=0, le=20)
    retry_delay_failed_seconds: int | None = Field(None, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    retry_busy_calls: bool | None = None
    max_retries_busy: int | None = Field(None, ge=0, le=20)
    retry_delay_busy_seconds: int | None = Field(None, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    retry_no_answer_calls: bool | None = None
    max_retries_no_answer: int | None = Field(None, ge=0, le=20)
    retry_delay_no_answer_seconds: int | None = Field(None, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    allow_reschedule: bool | None = None
    max_reschedules_per_prospect: int | None = Field(None, ge=0, le=100)
    reschedule_min_delay_hours: float | None = Field(None, ge=0, le=MAX_RETRY_DELAY_SECONDS / 3600)
    is_hr_campaign: bool | None = None
    opt_out_digit: str | None = Field(
        None,
        pattern=r"^[0-9*#]?$",
        examples=["9"],
        description="DTMF key (0-9, * or #) that puts the callee on your do-not-call list during a call: "
        "every later attempt to the number, in every campaign, stops; the call itself goes on. "
        '"" clears it',
    )
    record: bool | None = Field(
        None,
        description="record every answered call with its voice worker (two-channel WAV, docs/recordings.md; "
        "default false). Check the consent rules where you call: the operator is responsible",
    )
    retry_voicemail_calls: bool | None = Field(None, description="retry when an answering machine answered")
    max_retries_voicemail: int | None = Field(None, ge=0, le=20)
    retry_delay_voicemail_seconds: int | None = Field(None, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    amd: AmdMode | None = Field(
        None,
        description="answering-machine detection on the callee's audio (docs/amd.md): off (default), "
        "detect (human/machine), detect_and_wait_for_beep (also the greeting's end: beep or silence)",
    )
    amd_timeout_seconds: int | None = Field(
        None, ge=3, le=120, description="give up detecting after this long from the answer (default 30)"
    )
    amd_async: bool | None = Field(
        None,
        description="the voice worker gets the call at the answer and the verdict as an ``amd`` event "
        "(default false: it gets the call after the verdict, in start.customParameters.answered_by)",
    )
    amd_on_machine: AmdAction | None = Field(
        None,
        description="a machine's call: hangup (default), leave_message (play amd_message_url after the "
        "greeting's end, then hang up) or worker (the voice worker takes it, told the verdict)",
    )
    amd_message_url: AmdMessageUrl | None = Field(
        None,
        examples=["https://example.com/message.wav"],
        description="WAV (16-bit PCM mono, 8 or 16 kHz) played to a machine; fetched once by the gateway "
        'and cached. "" clears it',
    )


class CampaignCreate(CampaignSettings):
    """The seed's POST /campaigns body; settings left out take the seed example's values."""

    name: str = Field(min_length=1, max_length=200, examples=["Q1 Feedback Survey"])
    agent_id: UUID
    candidates: list[Candidate] = Field(examples=[[{"name": "John Doe", "phone": "+14155552671"}]])
    start_campaign: bool = False
    from_numbers: list[str] = Field(default_factory=list, examples=[["+14155550100"]])
    default_region: str | None = Field(
        None, min_length=2, max_length=2, description="region for national-format phones (else the tenant's)"
    )


class CampaignUpdate(CampaignSettings):
    """PATCH /campaigns/{id}: the seed's fields plus windows, retries and caps; ``from_numbers`` adds DIDs."""

    name: str | None = Field(None, min_length=1, max_length=200)
    agent_id: UUID | None = None
    from_numbers: list[str] | None = None

    # Checked here for a PATCH, with its other field errors in one answer; POST /campaigns checks them
    # in api/services/campaigns.py, together with the candidates' phones, caller IDs and agent.
    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and (reason := zone_problem(value)):
            raise ValueError(reason)
        return value

    @field_validator("call_days")
    @classmethod
    def _known_days(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [weekday_name(day) for day in value]


class CampaignCreated(BaseModel):
    """The seed's POST /campaigns answer, plus how many candidates were duplicates."""

    success: bool = True
    campaign_id: UUID
    total_prospects: int
    duplicates: int
    message: str
    started: bool


class AllocatedDid(BaseModel):
    did_id: UUID
    number: str
    max_concurrent_calls: int
    daily_cap: int | None


class CampaignPublic(BaseModel):
    """GET /campaigns/{id}: the seed's fields, then every setting and lifecycle time."""

    id: UUID
    name: str
    status: str
    max_concurrent_calls: int
    timezone: str
    call_timeout_seconds: int
    allow_reschedule: bool
    max_reschedules_per_prospect: int
    reschedule_min_delay_hours: float
    total_prospects: int
    active_prospects: int
    pending_prospects: int
    is_hr_campaign: bool
    created_at: datetime
    allocated_dids: list[AllocatedDid]
    client_id: UUID
    agent_id: UUID | None
    provider: str
    call_hours_start: ClockTime
    call_hours_end: ClockTime
    call_days: list[str]
    use_vanira_managed: bool
    retry_failed_calls: bool
    max_retries_failed: int
    retry_delay_failed_seconds: int
    retry_busy_calls: bool
    max_retries_busy: int
    retry_delay_busy_seconds: int
    retry_no_answer_calls: bool
    max_retries_no_answer: int
    retry_delay_no_answer_seconds: int
    default_region: str
    prospects_by_state: dict[str, int]
    scheduled_start_time: datetime | None
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    opt_out_digit: str | None
    record: bool
    retry_voicemail_calls: bool
    max_retries_voicemail: int
    retry_delay_voicemail_seconds: int
    amd: str
    amd_timeout_seconds: int
    amd_async: bool
    amd_on_machine: str
    amd_message_url: str | None


class CampaignSummary(BaseModel):
    """One entry of GET /campaigns."""

    id: UUID
    name: str
    status: str
    agent_id: UUID | None
    client_id: UUID
    provider: str
    total_prospects: int
    successful_calls: int
    failed_calls: int
    created_at: datetime
    updated_at: datetime


class CampaignList(BaseModel):
    """GET /campaigns: the seed's ``data``, and ``total`` as every list has."""

    data: list[CampaignSummary]
    total: int


class CampaignUpdated(BaseModel):
    id: UUID
    name: str
    status: str
    updated_at: datetime


class ScheduleStart(BaseModel):
    """Kept a string so a blank or unparsable time gets a clear VALIDATION_ERROR, not pydantic's words."""

    scheduled_start_time: str | None = Field(None, examples=["2030-04-01T09:00:00Z"])


class Transitioned(BaseModel):
    """The seed's answer to start, pause, resume and schedule-start."""

    success: bool = True
    campaign_id: UUID
    status: str
    message: str
    extra_data: dict[str, Any]


class Scheduled(Transitioned):
    """The seed's answer to schedule-start: the confirmed time too."""

    scheduled_start_time: datetime
