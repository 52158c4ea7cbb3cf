"""Campaign routes, the seed's Campaigns section: create, list, read, update, start/pause/resume/schedule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from api.deps import AnyKey, SecretKey, Store, Svc, parse_id
from api.errors import Conflict, NotFound, invalid_field
from api.schemas.campaigns import (
    CampaignCreate,
    CampaignCreated,
    CampaignList,
    CampaignPublic,
    CampaignSummary,
    CampaignUpdate,
    CampaignUpdated,
    Scheduled,
    ScheduleStart,
    Transitioned,
)
from api.services import campaigns as service
from dialer.domain import CampaignStatus
from dialer.storage.views import CampaignTotals

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


def campaign_id(id: str) -> UUID:
    return parse_id(id, "campaign id")


CampaignId = Annotated[UUID, Depends(campaign_id)]


@router.post("", response_model=CampaignCreated)
async def create_campaign(body: CampaignCreate, key: SecretKey, svc: Svc) -> CampaignCreated:
    """Create a campaign with up to 50 candidates; ``start_campaign`` starts it at once."""
    return await service.create_campaign(svc, key.tenant_id, body)


@router.get("", response_model=CampaignList)
async def list_campaigns(key: AnyKey, store: Store) -> CampaignList:
    """The tenant's campaigns, newest first, with prospect and call counters."""
    records = await store.list_campaigns(key.tenant_id)
    totals = await store.campaign_totals(key.tenant_id)
    data = []
    for record in records:
        counts = totals.get(record.id, CampaignTotals())
        data.append(
            CampaignSummary(
                id=record.id,
                name=record.spec.name,
                status=record.status.value,
                agent_id=record.spec.agent_id,
                client_id=record.tenant_id,
                provider=record.spec.provider,
                total_prospects=counts.total_prospects,
                successful_calls=counts.successful_calls,
                failed_calls=counts.failed_calls,
                created_at=record.created_at,
                updated_at=record.updated_at,
            )
        )
    return CampaignList(data=data, total=len(data))


@router.get("/{id}", response_model=CampaignPublic)
async def get_campaign(cid: CampaignId, key: AnyKey, store: Store) -> CampaignPublic:
    """One campaign with its counters and allocated caller IDs."""
    record = await service.owned_campaign(store, key.tenant_id, cid)
    return await service.campaign_view(store, record)


@router.patch("/{id}", response_model=CampaignUpdated)
async def update_campaign(cid: CampaignId, body: CampaignUpdate, key: SecretKey, svc: Svc) -> CampaignUpdated:
    """Change settings; ``from_numbers`` allocates more caller IDs. Null fields are left unchanged.

    A new calling window (``timezone``, ``call_hours_start``/``end``, ``call_days``) applies at once:
    prospects the old window deferred are checked against the new one now (retry delays still hold).
    """
    store = svc.store
    record = await service.owned_campaign(store, key.tenant_id, cid)
    changes = service.settings_of(body)
    if body.name is not None:
        changes["name"] = body.name
    if body.agent_id is not None:
        if await store.tenant_agent(key.tenant_id, body.agent_id) is None:
            raise NotFound("AGENT_NOT_FOUND", "agent not found")
        changes["agent_id"] = body.agent_id
    if not changes and not body.from_numbers:
        raise invalid_field("", "No fields provided")
    try:
        dataclasses.replace(record.spec, **changes)  # the spec validates zone and weekdays
    except ValueError as exc:
        raise invalid_field("", str(exc)) from None
    region = record.spec.default_region or "US"
    if body.from_numbers:
        ids = await service.resolve_from_numbers(store, key.tenant_id, body.from_numbers, region)
        await store.allocate_dids(cid, ids)
    if changes:
        await store.update_campaign(cid, changes)
    if svc.runtime is not None:
        svc.runtime.campaigns_changed()  # re-planned prospects, caps or caller IDs: refill now
    updated = await service.owned_campaign(store, key.tenant_id, cid)
    return CampaignUpdated(
        id=updated.id, name=updated.spec.name, status=updated.status.value, updated_at=updated.updated_at
    )


async def _transition(cid: UUID, verb: str, key: SecretKey, svc: Svc) -> Transitioned:
    record = await service.owned_campaign(svc.store, key.tenant_id, cid)
    rule = service.TRANSITIONS[verb]
    status = await service.transition(svc, record, verb)
    return Transitioned(
        campaign_id=cid,
        status=status.value,
        message=rule.message,
        extra_data={"id": str(cid), "status": status.value},
    )


@router.post("/{id}/start", response_model=Transitioned)
async def start_campaign(cid: CampaignId, key: SecretKey, svc: Svc) -> Transitioned:
    """Start a draft or scheduled campaign now."""
    return await _transition(cid, "start", key, svc)


@router.post("/{id}/pause", response_model=Transitioned)
async def pause_campaign(cid: CampaignId, key: SecretKey, svc: Svc) -> Transitioned:
    """Stop dialling new prospects; calls already up finish."""
    return await _transition(cid, "pause", key, svc)


@router.post("/{id}/resume", response_model=Transitioned)
async def resume_campaign(cid: CampaignId, key: SecretKey, svc: Svc) -> Transitioned:
    """Resume a paused campaign."""
    return await _transition(cid, "resume", key, svc)


@router.post("/{id}/schedule-start", response_model=Scheduled)
async def schedule_start(cid: CampaignId, body: ScheduleStart, key: SecretKey, svc: Svc) -> Scheduled:
    """Start the campaign automatically at ``scheduled_start_time`` (kept in the database).

    The time is stored on the campaign row (status ``scheduled``); a leader-elected APScheduler job
    (scheduler/jobs.py) polls for due rows and starts them, so the start survives restarts. There is
    deliberately no APScheduler SQLAlchemy job store: several scheduler processes sharing one would
    each run the job, whereas one leader polling the table starts each campaign exactly once.
    """
    await service.owned_campaign(svc.store, key.tenant_id, cid)
    when = service.parse_start_time(body.scheduled_start_time, datetime.now(UTC))
    if not await svc.store.schedule_campaign(cid, when):
        current = await service.owned_campaign(svc.store, key.tenant_id, cid)
        raise Conflict(
            "INVALID_CAMPAIGN_TRANSITION", f"cannot schedule a campaign that is {current.status.value}"
        )
    status = CampaignStatus.SCHEDULED.value
    return Scheduled(
        campaign_id=cid,
        status=status,
        scheduled_start_time=when,
        message="Campaign start scheduled successfully",
        extra_data={"id": str(cid), "status": status},
    )
