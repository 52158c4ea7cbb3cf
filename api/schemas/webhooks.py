"""Webhook endpoint bodies and responses (our own resource, not in the seed)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

EventType = Literal[
    "call.ringing",
    "call.answered",
    "call.completed",
    "call.transferred",
    "call.recording_ready",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "prospect.opted_out",
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, examples=["https://crm.example.com/hooks/dialer"])
    events: list[EventType] = Field(min_length=1, examples=[["call.completed", "campaign.completed"]])
    description: str = Field("", max_length=200)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http:// or https:// URL")
        return value


class WebhookPublic(BaseModel):
    id: UUID
    url: str
    events: list[str]
    description: str
    created_at: datetime


class WebhookCreated(WebhookPublic):
    """The new endpoint with its signing ``secret``, shown this once (keep it: it is never returned again).

    Each delivery carries ``X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` under this
    secret and ``X-Webhook-Id: <event id>`` (the same on retries: dedupe on it). Verify with a
    constant-time compare and refuse timestamps more than 5 minutes old.
    """

    secret: str


class WebhookList(BaseModel):
    """All of the tenant's: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[WebhookPublic]
    total: int


class WebhookDeleted(BaseModel):
    success: bool = True
    id: UUID


class DeliveryPublic(BaseModel):
    id: UUID
    event_id: UUID
    event_type: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    http_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(BaseModel):
    """A page: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[DeliveryPublic]
    total: int
