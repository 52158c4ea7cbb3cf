"""Prospect uploads: JSON or CSV rows normalised per row, valid ones stored, the rest reported."""

from __future__ import annotations

import csv
import io

from pydantic import ValidationError
from starlette.requests import Request

from api.deps import Services
from api.errors import field_errors, invalid, invalid_field, not_json
from api.schemas.campaigns import Candidate
from api.schemas.prospects import MAX_UPLOAD, ProspectBatch, ProspectUpload, RowError
from api.services.campaigns import normalise_rows
from dialer.domain import CampaignStatus
from dialer.storage import CampaignRecord


def candidates_from_json(raw: bytes) -> list[Candidate]:
    """The rows of a JSON upload; VALIDATION_ERROR with field paths when the body is malformed."""
    try:
        batch = ProspectBatch.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        if any(err["type"] == "json_invalid" for err in errors):
            raise invalid_field("", not_json(raw)) from None
        raise invalid(field_errors(errors)) from None
    return batch.prospects


def candidates_from_csv(raw: bytes) -> list[Candidate]:
    """The rows of a CSV upload: a header with ``phone`` (and usually ``name``); other columns are kept."""
    try:
        text = raw.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        raise invalid_field("", "CSV must be UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if "phone" not in header:
        raise invalid_field("", "CSV header must name a 'phone' column (and usually 'name')")
    reader.fieldnames = header
    rows = []
    for record in reader:
        values = {k: (v or "").strip() for k, v in record.items() if k is not None}
        rows.append(Candidate(**values))
    return rows


async def upload(svc: Services, campaign: CampaignRecord, candidates: list[Candidate]) -> ProspectUpload:
    """Store the valid rows (duplicates by phone skipped), report the others with their row numbers."""
    if len(candidates) > MAX_UPLOAD:
        raise invalid_field("prospects", f"at most {MAX_UPLOAD} prospects per upload; send several")
    region = campaign.spec.default_region or "US"
    rows, errors = normalise_rows(candidates, region)
    inserted, duplicates = await svc.store.add_prospects(campaign.id, rows) if rows else (0, 0)
    if inserted and campaign.status is CampaignStatus.ACTIVE and svc.runtime is not None:
        svc.runtime.campaigns_changed()
    return ProspectUpload(
        campaign_id=campaign.id,
        received=len(candidates),
        inserted=inserted,
        duplicates=duplicates,
        invalid=len(errors),
        errors=[RowError(**e) for e in errors],
    )


def is_csv(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in ("text/csv", "application/csv")


def is_multipart(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


async def uploaded_file(request: Request) -> bytes:
    """The bytes of the multipart field ``file`` (a CSV); VALIDATION_ERROR when it is missing."""
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # malformed multipart bodies raise several parser exception types
        raise invalid_field("", "malformed multipart body") from None
    try:  # close every part, the unused ones too: each is a spooled temporary file
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise invalid_field("file", "multipart upload needs a CSV file in the field 'file'")
        return await upload.read()
    finally:
        await form.close()
