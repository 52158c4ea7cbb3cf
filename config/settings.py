"""Settings from the environment (prefix ``DIALER_``); built in ``main()``, never at import."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the dialer, one flat namespace per adapter prefix (``DIALER_SIP_…`` and so on)."""

    model_config = SettingsConfigDict(env_prefix="DIALER_", env_file=None, extra="ignore")

    # storage
    database_url: str = Field(
        default="sqlite:///./data/dialer.db",
        description="SQLAlchemy URL: a SQLite file (default) or postgresql+psycopg://…",
    )
    journal_file: Path | None = Field(
        default=None,
        description="Spool file of call events that wait for the database during an outage (past the "
        "1000 held in memory); default: call-journal[-NODE_ID].jsonl beside the SQLite file, else ./data/",
    )
    # coordination
    redis_url: str | None = Field(default=None, description="Unset = in-process coordination")
    redis_namespace: str = Field(
        default="dialer", description="Prefix of every Redis key: several deployments can share one Redis"
    )
    node_id: str | None = Field(
        default=None, description="This node's name in leases, leadership and presence (default host-pid)"
    )
    gateway_command_timeout_seconds: float = Field(
        default=5.0, description="How long an API node waits for a gateway node to take a call command"
    )
    # scheduler
    scheduler_interval_seconds: float = Field(
        default=5.0, description="How often scheduled starts are checked (and leadership renewed)"
    )
    scheduler_lead_ttl_seconds: float = Field(
        default=15.0, description="Scheduler leadership lease: a standby takes over this long after a crash"
    )
    # HTTP API
    http_host: str = Field(default="127.0.0.1", description="REST API listen address")
    http_port: int = Field(default=8080, description="REST API listen port")
    # webhooks out
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhook URLs point at loopback/private/link-local addresses (SSRF guard off)",
    )
    # SIP
    sip_host: str = Field(default="127.0.0.1", description="SIP listen address")
    sip_port: int = Field(default=5060, description="SIP listen port; worker i uses port + i")
    sip_workers: int = Field(default=1, description="SIP worker processes")
    sip_rtp_port: int = Field(
        default=20000, description="First RTP port; worker i uses its own range after it"
    )
    sip_rtp_ports_per_worker: int = Field(default=2000, description="RTP ports each SIP worker may use")
    sip_transfer_lines: int = Field(
        default=0,
        ge=0,
        description="Call slots per SIP worker kept for bridged transfers' human legs (no call takes them)",
    )
    sip_inbound_proxies: str = Field(
        default="",
        description="Comma-separated networks (CIDR) of SIP proxies in front of the workers (Kamailio), "
        "whose INVITEs are taken as if from a trunk: the proxy checks the trunk sources itself",
    )
    sip_inbound_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the SIP workers' inbound policy (trunk sources, imported numbers) is re-read",
    )
    max_call_seconds: float = Field(default=3600.0, description="Toll-fraud guard: longest call allowed")
    # voice-worker bridge
    worker_reconnect_attempts: int = Field(
        default=0,
        ge=0,
        description="Attempts per call to re-open a voice worker's dropped WebSocket (0: hang up at once)",
    )
    worker_reconnect_backoff_seconds: float = Field(
        default=0.1,
        gt=0,
        le=1.0,
        description="Wait before the first re-opening attempt, doubled after each; all in 1.5 s of a drop",
    )
    # dispatch
    dispatch_tick_seconds: float = Field(default=1.0, description="Safety-net tick; refills are event-driven")
    lease_ttl_seconds: float = Field(default=30.0, description="Slot lease TTL; renewed while a call is up")
    default_region: str = Field(default="US", description="Region for national-format numbers")
    regional_rules_file: Path | None = Field(
        default=None, description="Extra TOML of regional calling rules, overriding/extending config/"
    )
    # call recordings (docs/recordings.md)
    recordings_dir: Path | None = Field(
        default=None,
        description="Where SIP workers write call recordings (and where they stay without S3); default: "
        "recordings/ beside the SQLite file, else ./data/recordings",
    )
    recordings_purge_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often recordings past their tenant's retention are deleted"
    )
    public_url: str | None = Field(
        default=None,
        description="The API's URL as clients reach it, for recording_url in webhooks and call records "
        "(default: http://HTTP_HOST:HTTP_PORT in webhooks, the request's own URL in the API)",
    )
    s3_bucket: str | None = Field(default=None, description="Set: recordings are moved to this S3 bucket")
    s3_endpoint: str | None = Field(
        default=None,
        description="S3-compatible endpoint, e.g. http://minio:9000 (default: AWS, https://s3.REGION.amazonaws.com)",
    )
    s3_region: str = Field(default="us-east-1", description="The bucket's region (part of the signature)")
    s3_access_key: str | None = Field(default=None, description="S3 access key id")
    s3_secret_key: str | None = Field(default=None, description="S3 secret access key")
    # logs
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per line")

    @field_validator("sip_inbound_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    def inbound_proxy_networks(self) -> list[str]:
        """``sip_inbound_proxies`` as a list of networks."""
        return [part.strip() for part in self.sip_inbound_proxies.split(",") if part.strip()]

    def journal_path(self) -> Path:
        """Where this node spools call events while the database is down (one file per node)."""
        if self.journal_file is not None:
            return self.journal_file
        folder = (self.sqlite_path() or Path("./data/x")).parent
        return folder / (f"call-journal-{self.node_id}.jsonl" if self.node_id else "call-journal.jsonl")

    def recordings_path(self) -> Path:
        """Where SIP workers write call recordings: the data folder's ``recordings/`` by default."""
        if self.recordings_dir is not None:
            return self.recordings_dir
        return (self.sqlite_path() or Path("./data/x")).parent / "recordings"

    def api_url(self) -> str:
        """The API's base URL as clients reach it (for recording URLs sent in webhooks)."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind ``database_url``, if it is one (to create its folder)."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None
