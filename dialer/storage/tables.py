"""The SQL schema as SQLModel tables; migrations/versions/ must create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any, Literal
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import JSON, Field, SQLModel


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC in
    SQLAlchemy's fixed-width text format (which keeps ``<=`` comparisons correct) and come back aware.
    Naive input is refused: a naive "now" is the classic off-by-hours bug.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


OnDelete = Literal["CASCADE", "SET NULL", "RESTRICT"]


def _fk(target: str, *, ondelete: OnDelete = "CASCADE") -> Any:
    return Field(foreign_key=target, ondelete=ondelete)


def _opt_fk(target: str, *, ondelete: OnDelete = "SET NULL") -> Any:
    return Field(default=None, foreign_key=target, ondelete=ondelete)


def _ts() -> Any:
    return Field(sa_type=UtcDateTime)


def _opt_ts() -> Any:
    return Field(default=None, sa_type=UtcDateTime)


class TenantRow(SQLModel, table=True):
    """A client of the gateway: owns keys, trunks, agents, numbers and campaigns."""

    __tablename__ = "tenants"
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str
    default_region: str = "US"
    max_call_duration_seconds: int = 3600
    recording_retention_days: int | None = None  # recordings older than this are deleted; None: kept
    created_at: datetime = _ts()


class ApiKeyRow(SQLModel, table=True):
    """An API key, stored only as its SHA-256; ``prefix`` is shown to humans to tell keys apart."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.Index("ix_api_keys_key_hash", "key_hash", unique=True),)
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = _fk("tenants.id")
    key_hash: str
    prefix: str
    scope: str  # "secret" | "publishable"
    created_at: datetime = _ts()
    revoked_at: datetime | None = _opt_ts()


class TrunkRow(SQLModel, table=True):
    """A SIP trunk: where INVITEs go, with its credentials and caps."""

    __tablename__ = "trunks"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name", name="uq_trunks_tenant_name"),)
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = _fk("tenants.id")
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    username: str | None = None
    password: str | None = None  # digest auth needs it in clear; protect the database instead
    # "register" would shadow a SQLModel attribute, so the Python name differs from the column's.
    register_enabled: bool = Field(default=False, sa_column_kwargs={"name": "register"})
    outbound_proxy: str | None = None
    max_concurrent_calls: int = 10
    max_cps: float = 1.0
    refer_supported: bool = True
    refer_uri_style: str = "sip"  # sip | tel
    allowed_countries: list[str] = Field(default_factory=list, sa_type=JSON)
    accept_inbound_refer: bool = False
    # Networks (CIDR) inbound INVITEs of this trunk may come from, besides its host's addresses.
    inbound_cidrs: list[str] = Field(default_factory=list, sa_type=JSON)


class AgentRow(SQLModel, table=True):
    """A voice worker that talks to callees: a WebSocket URL or a SIP URI."""

    __tablename__ = "agents"
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = Field(foreign_key="tenants.id", ondelete="CASCADE", index=True)
    name: str
    worker_url: str
    transfer_number: str | None = None


class PhoneNumberRow(SQLModel, table=True):
    """A DID: caller ID for outbound calls and entry point for inbound ones."""

    __tablename__ = "phone_numbers"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "number", name="uq_phone_numbers_tenant_number"),)
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = _fk("tenants.id")
    number: str  # E.164
    country: str  # ISO 3166 alpha-2
    trunk_id: UUID = _fk("trunks.id", ondelete="RESTRICT")
    agent_id: UUID | None = _opt_fk("agents.id")
    label: str = ""
    max_concurrent_calls: int = 1
    daily_cap: int | None = None
    active: bool = True
    managed: bool = False  # in the operator's shared pool, usable by campaigns with use_vanira_managed
    created_at: datetime = _ts()


class CampaignRow(SQLModel, table=True):
    """A campaign with every setting of the seed's POST /campaigns body."""

    __tablename__ = "campaigns"
    __table_args__ = (sa.Index("ix_campaigns_status", "status"),)
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = Field(foreign_key="tenants.id", ondelete="CASCADE", index=True)
    name: str
    agent_id: UUID | None = _opt_fk("agents.id")
    provider: str = ""
    timezone: str
    call_hours_start: time
    call_hours_end: time
    call_days: list[str] = Field(default_factory=list, sa_type=JSON)
    max_concurrent_calls: int
    call_timeout_seconds: int
    use_vanira_managed: bool = False
    retry_failed_calls: bool
    max_retries_failed: int
    retry_delay_failed_seconds: int
    retry_busy_calls: bool
    max_retries_busy: int
    retry_delay_busy_seconds: int
    retry_no_answer_calls: bool
    max_retries_no_answer: int
    retry_delay_no_answer_seconds: int
    allow_reschedule: bool
    max_reschedules_per_prospect: int
    reschedule_min_delay_hours: float
    is_hr_campaign: bool = False
    default_region: str
    opt_out_digit: str | None = None  # a DTMF digit that puts the callee on the tenant's DNC list
    record: bool = False  # record its calls (docs/recordings.md)
    retry_voicemail_calls: bool = True
    max_retries_voicemail: int = 2
    retry_delay_voicemail_seconds: int = 3600
    amd: str = "off"  # answering-machine detection: off | detect | detect_and_wait_for_beep
    amd_timeout_seconds: int = 30
    amd_async: bool = False
    amd_on_machine: str = "hangup"  # hangup | leave_message | worker
    amd_message_url: str | None = None
    status: str  # draft | scheduled | active | paused | completed
    scheduled_start_time: datetime | None = _opt_ts()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    started_at: datetime | None = _opt_ts()
    completed_at: datetime | None = _opt_ts()


class CampaignDidRow(SQLModel, table=True):
    """A DID allocated to a campaign as caller ID."""

    __tablename__ = "campaign_dids"
    __table_args__ = (sa.UniqueConstraint("campaign_id", "phone_number_id", name="uq_campaign_dids_pair"),)
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    campaign_id: UUID = _fk("campaigns.id")
    phone_number_id: UUID = _fk("phone_numbers.id")


class ProspectRow(SQLModel, table=True):
    """One person to call in a campaign and where they stand."""

    __tablename__ = "prospects"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "phone", name="uq_prospects_campaign_phone"),
        # The dispatch query: equality on (campaign, state), range and order on the due time, so
        # fetching the next batch reads only that batch, whatever the campaign's size.
        sa.Index("ix_prospects_due", "campaign_id", "state", "next_attempt_at"),
        # add_dnc moves a tenant's prospects with one phone across all campaigns.
        sa.Index("ix_prospects_tenant_phone", "tenant_id", "phone"),
    )
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    campaign_id: UUID = _fk("campaigns.id")
    tenant_id: UUID = _fk("tenants.id")
    name: str
    phone: str  # E.164
    custom: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    state: str = "pending"
    next_attempt_at: datetime | None = _opt_ts()
    # The earliest the retry policy allows the next attempt, before the calling window moved it to
    # next_attempt_at (None: never attempted). A campaign's new window re-plans from it, never earlier.
    not_before: datetime | None = _opt_ts()
    attempts_busy: int = 0
    attempts_no_answer: int = 0
    attempts_failed: int = 0
    attempts_voicemail: int = 0
    total_attempts: int = 0
    reschedules: int = 0
    last_outcome: str | None = None
    hold_reason: str | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class AttemptRow(SQLModel, table=True):
    """One call, outbound (from a campaign or the API) or inbound: the call record."""

    __tablename__ = "attempts"
    __table_args__ = (
        sa.Index("ix_attempts_tenant_to", "tenant_id", "to_number", "created_at"),  # frequency caps
        sa.Index("ix_attempts_did", "from_did_id", "created_at"),  # DID daily caps
        sa.Index("ix_attempts_campaign", "campaign_id", "created_at"),
        sa.Index("ix_attempts_prospect", "prospect_id"),
        # Only calls still up: stays tiny however many calls were ever made (reconciliation input).
        sa.Index(
            "ix_attempts_open",
            "campaign_id",
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        ),
        # Only calls with a recording kept: the retention job's scan per tenant, oldest first.
        sa.Index(
            "ix_attempts_recordings",
            "tenant_id",
            "recording_at",
            postgresql_where=sa.text("recording_location IS NOT NULL"),
            sqlite_where=sa.text("recording_location IS NOT NULL"),
        ),
    )
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = _fk("tenants.id")
    campaign_id: UUID | None = _opt_fk("campaigns.id")
    prospect_id: UUID | None = _opt_fk("prospects.id")
    attempt_number: int = 1
    direction: str = "outbound"  # outbound | inbound
    from_did_id: UUID | None = _opt_fk("phone_numbers.id")
    from_number: str
    to_number: str
    trunk_id: UUID | None = _opt_fk("trunks.id")
    agent_id: UUID | None = _opt_fk("agents.id")
    sip_worker: str | None = None
    lease_token: int | None = Field(default=None, sa_type=sa.BigInteger)
    status: str = "dialing"  # dialing | ringing | in-progress | ended
    outcome: str | None = None
    sip_code: int | None = None
    reason: str | None = None
    q850_cause: int | None = None
    created_at: datetime = _ts()
    invited_at: datetime | None = _opt_ts()
    ringing_at: datetime | None = _opt_ts()
    answered_at: datetime | None = _opt_ts()
    ended_at: datetime | None = _opt_ts()
    answered_by: str | None = None  # the answering-machine verdict (sip/amd.py): human, machine_start, ...
    amd: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # an API call's own AmdSettings
    duration_seconds: float | None = None
    pdd_ms: float | None = None
    transfer_to: str | None = None
    transfer_method: str | None = None  # refer | bridge
    transfer_result: str | None = None
    transfer_started_at: datetime | None = _opt_ts()
    transfer_ended_at: datetime | None = _opt_ts()
    # Every transfer of the call, in order (dialer/transfers.py); the transfer_* columns are the last.
    transfers: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)
    callee_name: str | None = None  # the prospect's name, or sip_data.name of an API call
    worker_connected_at: datetime | None = _opt_ts()  # the voice worker took the call (abandonment)
    record: bool = False  # the call was asked to be recorded (its campaign's or the API call's ``record``)
    recording_location: str | None = None  # a local path or s3://bucket/key; None: none (or deleted)
    recording_at: datetime | None = _opt_ts()  # the recording was complete
    recording_seconds: float | None = None
    recording_deleted_at: datetime | None = _opt_ts()  # removed by the tenant's retention


class DncEntryRow(SQLModel, table=True):
    """A number the tenant must never call again."""

    __tablename__ = "dnc_entries"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "phone", name="uq_dnc_entries_tenant_phone"),)
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = _fk("tenants.id")
    phone: str
    reason: str = ""
    created_at: datetime = _ts()


class WebhookRow(SQLModel, table=True):
    """A tenant's webhook endpoint and the events it subscribes to.

    ``secret`` is kept in clear on purpose: signing with HMAC-SHA256 needs the key itself (a hash of it
    could not sign). It is shown to the tenant once, at creation, and never returned again.
    """

    __tablename__ = "webhooks"
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID = Field(foreign_key="tenants.id", ondelete="CASCADE", index=True)
    url: str
    events: list[str] = Field(default_factory=list, sa_type=JSON)
    secret: str
    description: str = ""
    created_at: datetime = _ts()


class WebhookDeliveryRow(SQLModel, table=True):
    """One event for one endpoint: the exact body sent, and how its attempts went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # Start-up re-queue and the retry sweep read pending rows by due time.
        sa.Index("ix_webhook_deliveries_pending", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
    )
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    webhook_id: UUID = _fk("webhooks.id")
    tenant_id: UUID = _fk("tenants.id")
    event_id: UUID
    event_type: str
    payload: str  # the JSON body, byte for byte what is signed and sent on every attempt
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    http_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = _opt_ts()
    locked_until: datetime | None = _opt_ts()  # a sender's claim on the row while its POST is out
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


def table(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a SQLModel class (queries here are Core statements)."""
    t: sa.Table = SQLModel.metadata.tables[str(model.__tablename__)]
    return t


metadata = SQLModel.metadata
tenants = table(TenantRow)
api_keys = table(ApiKeyRow)
trunks = table(TrunkRow)
agents = table(AgentRow)
phone_numbers = table(PhoneNumberRow)
campaigns = table(CampaignRow)
campaign_dids = table(CampaignDidRow)
prospects = table(ProspectRow)
attempts = table(AttemptRow)
dnc_entries = table(DncEntryRow)
webhooks = table(WebhookRow)
webhook_deliveries = table(WebhookDeliveryRow)
