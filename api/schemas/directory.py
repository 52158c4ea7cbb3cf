"""Trunk, agent, do-not-call and API key bodies and responses (not in the seed: our own resources)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_INBOUND_CIDRS = 100


def iso_codes(value: list[str]) -> list[str]:
    codes = [c.strip().upper() for c in value]
    if any(len(c) != 2 or not c.isalpha() for c in codes):
        raise ValueError("countries are ISO 3166 alpha-2 codes such as US")
    return codes


def cidrs(value: list[str]) -> list[str]:
    """Networks in canonical form ("203.0.113.0/24", "2001:db8::/32"; an address alone is a /32 or
    /128); a network with host bits set or anything else is refused, naming the entry."""
    networks = []
    for entry in value:
        try:
            networks.append(str(ipaddress.ip_network(entry.strip())))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IPv4 or IPv6 network such as 203.0.113.0/24") from None
    if len(networks) > MAX_INBOUND_CIDRS:
        raise ValueError(f"at most {MAX_INBOUND_CIDRS} networks")
    return networks


def worker_scheme(value: str) -> str:
    if not value.startswith(("ws://", "wss://", "sip:", "sips:")):
        raise ValueError("worker_url must be a ws://, wss:// or sip: URI")
    return value


class TrunkCreate(BaseModel):
    """A SIP trunk; ``password`` is write-only (never returned, never logged)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=100, examples=["main"])
    host: str = Field(min_length=1, max_length=255, examples=["sip.example.net"])
    port: int = Field(5060, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str | None = None
    password: str | None = Field(None, json_schema_extra={"writeOnly": True})
    # "register" would shadow a pydantic attribute: the JSON name is an alias.
    register_enabled: bool = Field(False, alias="register")
    outbound_proxy: str | None = None
    max_concurrent_calls: int = Field(10, ge=1, le=10_000)
    max_cps: float = Field(1.0, gt=0, le=1000)
    refer_supported: bool = True
    refer_uri_style: Literal["sip", "tel"] = "sip"
    allowed_countries: list[str] = Field(default_factory=list, examples=[["US", "CA"]])
    accept_inbound_refer: bool = False
    inbound_cidrs: list[str] = Field(
        default_factory=list,
        examples=[["203.0.113.0/24"]],
        description="Networks the trunk's inbound INVITEs may come from besides its host's addresses",
    )

    @field_validator("allowed_countries")
    @classmethod
    def _iso_codes(cls, value: list[str]) -> list[str]:
        return iso_codes(value)

    @field_validator("inbound_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return cidrs(value)

    def __repr__(self) -> str:  # keep the password out of reprs that end up in logs
        return f"TrunkCreate(name={self.name!r}, host={self.host!r})"


class TrunkUpdate(BaseModel):
    """Fields to change; absent ones stay. ``password`` is write-only (null clears it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = Field(None, min_length=1, max_length=100)
    host: str | None = Field(None, min_length=1, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] | None = None
    username: str | None = None
    password: str | None = Field(None, json_schema_extra={"writeOnly": True})
    register_enabled: bool | None = Field(None, alias="register")
    outbound_proxy: str | None = None
    max_concurrent_calls: int | None = Field(None, ge=1, le=10_000)
    max_cps: float | None = Field(None, gt=0, le=1000)
    refer_supported: bool | None = None
    refer_uri_style: Literal["sip", "tel"] | None = None
    allowed_countries: list[str] | None = None
    accept_inbound_refer: bool | None = None
    inbound_cidrs: list[str] | None = None

    @field_validator("allowed_countries")
    @classmethod
    def _iso_codes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else iso_codes(value)

    @field_validator("inbound_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else cidrs(value)

    def __repr__(self) -> str:  # keep the password out of reprs that end up in logs
        return f"TrunkUpdate(fields={sorted(self.model_fields_set)!r})"


class Deleted(BaseModel):
    success: bool = True
    id: UUID


class TrunkPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: UUID
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool
    register_enabled: bool = Field(alias="register")
    outbound_proxy: str | None
    max_concurrent_calls: int
    max_cps: float
    refer_supported: bool
    refer_uri_style: str
    allowed_countries: list[str]
    accept_inbound_refer: bool
    inbound_cidrs: list[str]


class TrunkList(BaseModel):
    """All of the tenant's: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[TrunkPublic]
    total: int


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Receptionist"])
    worker_url: str = Field(examples=["wss://worker.example/stream"])
    transfer_number: str | None = Field(None, examples=["+14155550199"])

    @field_validator("worker_url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return worker_scheme(value)


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    worker_url: str | None = None
    transfer_number: str | None = Field(None, description="null removes it")

    @field_validator("worker_url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        return None if value is None else worker_scheme(value)


class AgentPublic(BaseModel):
    id: UUID
    name: str
    worker_url: str
    transfer_number: str | None
    client_id: UUID


class AgentList(BaseModel):
    """All of the tenant's: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[AgentPublic]
    total: int


class DncCreate(BaseModel):
    phone: str = Field(examples=["+14155552671"])
    reason: str = Field("", max_length=200)


class DncAdded(BaseModel):
    success: bool = True
    phone: str
    stopped_prospects: int


class DncPublic(BaseModel):
    phone: str
    reason: str
    created_at: datetime


class DncRemoved(BaseModel):
    success: bool = True
    phone: str
    removed: bool


class DncList(BaseModel):
    """A page: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[DncPublic]
    total: int


class KeyCreate(BaseModel):
    publishable: bool = False


class KeyPublic(BaseModel):
    id: UUID
    prefix: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    """The new key: ``key`` is its plaintext, shown this once (only its SHA-256 is stored)."""

    key: str


class KeyList(BaseModel):
    """All of the tenant's: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[KeyPublic]
    total: int


class KeyRevoked(BaseModel):
    success: bool = True
    id: UUID
    revoked: bool
