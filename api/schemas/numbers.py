"""Phone number (DID) bodies and responses, as the seed's Phone Numbers section."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field


class NumberPublic(BaseModel):
    """One number of GET /phone-numbers (the seed's fields, then our caps)."""

    id: UUID
    number: str
    country_code: str
    label: str
    client_id: UUID
    trunk_id: UUID
    is_active: bool
    is_vanira_internal: bool
    agent_id: UUID | None
    max_concurrent_calls: int
    daily_cap: int | None


class NumberList(BaseModel):
    """GET /phone-numbers: the one list shape (``data``, ``total``) plus the seed's ``numbers``, the same."""

    numbers: list[NumberPublic]
    data: list[NumberPublic]
    total: int


class NumberImport(BaseModel):
    """The seed's import body plus ``trunk_id`` and caps.

    The ``vobiz_*`` and credential fields are accepted for compatibility and ignored: numbers here live
    on the tenant's own SIP trunks, whose credentials are set with POST /trunks. They are never stored.
    """

    phone_number: str = Field(examples=["+14155550123"])
    agent_id: UUID | None = Field(None, description="who answers inbound calls; null for caller ID only")
    trunk_id: UUID | None = Field(None, description="one of your trunks; may be left out if you have one")
    label: str = Field("", max_length=200)
    max_concurrent_calls: int = Field(1, ge=1, le=1000)
    daily_cap: int | None = Field(None, ge=1, le=1_000_000)  # calls a day
    vobiz_auth_id: str | None = None
    vobiz_auth_token: str | None = None
    use_existing_credentials: bool = False
    credential_label: str | None = None


class NumberImported(BaseModel):
    phone_number: str
    agent_id: UUID | None
    trunk_endpoint: str
    outbound_trunk_id: UUID
    assigned: bool
    service_reloaded: bool
    id: UUID
    country_code: str


class NumberLink(BaseModel):
    phone_number: str
    agent_id: UUID


class NumberLinked(BaseModel):
    success: bool = True
    phone_number: str
    agent_id: UUID


class NumberUpdate(BaseModel):
    """PATCH /phone-numbers/{number}: caps, label, active flag."""

    label: str | None = Field(None, max_length=200)
    max_concurrent_calls: int | None = Field(None, ge=1, le=1000)
    daily_cap: int | None = Field(None, ge=1, le=1_000_000)  # calls a day
    is_active: bool | None = None


class NumberDeleted(BaseModel):
    phone_number: str
    deleted: bool
    unassigned: bool
