"""Prospects of a campaign beyond the seed's 50 candidates: bulk upload (JSON or CSV), list, remove."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from api.deps import PageLimit, PageOffset, SecretKey, Store, Svc, parse_id
from api.errors import NotFound, invalid_field
from api.routes.campaigns import CampaignId
from api.schemas.prospects import ProspectBatch, ProspectPage, ProspectPublic, ProspectRemoved, ProspectUpload
from api.services import prospects as service
from api.services.campaigns import owned_campaign
from dialer.domain import ProspectState

router = APIRouter(prefix="/campaigns/{id}/prospects", tags=["prospects"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ProspectBatch.model_json_schema(ref_template="#/components/schemas/{model}")
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "name,phone,plan\nJane Roe,+14155552671,gold\n",
            },
        },
    }
}


def prospect_id(pid: str) -> UUID:
    return parse_id(pid, "prospect id", "pid")


@router.post("", response_model=ProspectUpload, status_code=201, openapi_extra=_UPLOAD_BODY)
async def upload_prospects(cid: CampaignId, request: Request, key: SecretKey, svc: Svc) -> ProspectUpload:
    """Add up to 10,000 prospects (JSON, ``text/csv``, or a CSV file in multipart field ``file``).

    Invalid rows are reported with their row numbers; duplicates by phone are skipped.
    """
    campaign = await owned_campaign(svc.store, key.tenant_id, cid)
    content_type = request.headers.get("content-type", "")
    if service.is_multipart(content_type):
        candidates = service.candidates_from_csv(await service.uploaded_file(request))
    elif service.is_csv(content_type):
        candidates = service.candidates_from_csv(await request.body())
    else:
        candidates = service.candidates_from_json(await request.body())
    return await service.upload(svc, campaign, candidates)


@router.get("", response_model=ProspectPage)
async def list_prospects(
    cid: CampaignId,
    key: SecretKey,
    store: Store,
    state: Annotated[
        str | None, Query(description="pending, dialing, held, completed, failed, dnc, removed")
    ] = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> ProspectPage:
    """A page of the campaign's prospects in upload order."""
    await owned_campaign(store, key.tenant_id, cid)
    if state is not None and state not in {s.value for s in ProspectState}:
        raise invalid_field("state", f"unknown prospect state {state!r}")
    found, total = await store.list_prospects(cid, state=state, limit=limit, offset=offset)
    data = [
        ProspectPublic(
            id=p.id,
            name=p.name,
            phone=p.phone,
            state=p.state.value,
            next_attempt_at=p.next_attempt_at,
            total_attempts=p.total_attempts,
            attempts_busy=p.attempts_busy,
            attempts_no_answer=p.attempts_no_answer,
            attempts_failed=p.attempts_failed,
            last_outcome=p.last_outcome.value if p.last_outcome else None,
            custom=p.custom,
        )
        for p in found
    ]
    return ProspectPage(data=data, total=total)


@router.delete("/{pid}", response_model=ProspectRemoved)
async def remove_prospect(
    cid: CampaignId, pid: Annotated[UUID, Depends(prospect_id)], key: SecretKey, store: Store
) -> ProspectRemoved:
    """Take a prospect out of the campaign: never dialled again; its call history stays."""
    await owned_campaign(store, key.tenant_id, cid)
    if not await store.remove_prospect(cid, pid):
        raise NotFound("PROSPECT_NOT_FOUND", "prospect not found in this campaign")
    return ProspectRemoved(prospect_id=pid, state=ProspectState.REMOVED.value)
