"""Prospect upload (JSON or CSV) and listing beyond the seed's 50 candidates per campaign."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.campaigns import Candidate

#: Most prospects one upload may carry; bigger lists go in several requests (each is one transaction).
MAX_UPLOAD = 10_000


class ProspectBatch(BaseModel):
    """POST /campaigns/{id}/prospects as JSON; the same rows may come as ``text/csv`` instead."""

    model_config = ConfigDict(extra="forbid")
    prospects: list[Candidate] = Field(
        examples=[[{"name": "Jane Roe", "phone": "+14155552671", "plan": "B"}]]
    )


class RowError(BaseModel):
    """Why one row was not stored; ``row`` counts data rows from 1 (a CSV header is not a row)."""

    row: int
    field: str
    reason: str


class ProspectUpload(BaseModel):
    success: bool = True
    campaign_id: UUID
    received: int
    inserted: int
    duplicates: int
    invalid: int
    errors: list[RowError]


class ProspectPublic(BaseModel):
    id: UUID
    name: str
    phone: str
    state: str
    next_attempt_at: datetime | None
    total_attempts: int
    attempts_busy: int
    attempts_no_answer: int
    attempts_failed: int
    last_outcome: str | None
    custom: dict[str, Any]


class ProspectPage(BaseModel):
    """A page: the one list shape, ``data`` and ``total`` (every match, across pages)."""

    data: list[ProspectPublic]
    total: int


class ProspectRemoved(BaseModel):
    success: bool = True
    prospect_id: UUID
    state: str
