"""Call routes, the seed's Calls section: create one SIP call, list and read records, transfer, hang up."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from api.deps import AnyKey, PageLimit, PageOffset, SecretKey, Store, Svc, parse_id
from api.runtime import CallRejected
from api.schemas.calls import (
    CallActionAccepted,
    CallCreate,
    CallCreated,
    CallDetail,
    CallList,
    CallStatus,
    TransferRequest,
)
from api.services import calls as service

router = APIRouter(prefix="/calls", tags=["calls"])


def call_id(id: str) -> UUID:
    return parse_id(id, "call id")


CallId = Annotated[UUID, Depends(call_id)]


@router.post("/create", response_model=CallCreated)
async def create_call(body: CallCreate, key: AnyKey, svc: Svc) -> CallCreated:
    """Place one outbound SIP call now (secret keys only); answers once the gateway has taken it."""
    return await service.create_call(svc, key, body)


@router.get("", response_model=CallList)
async def list_calls(
    request: Request,
    key: SecretKey,
    store: Store,
    agent_id: UUID | None = None,
    status: CallStatus | None = None,
    campaign_id: UUID | None = None,
    direction: Literal["inbound", "outbound"] | None = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> CallList:
    """The tenant's calls, newest first; ``total`` counts every match across pages."""
    views, total = await store.list_calls(
        key.tenant_id,
        agent_id=agent_id,
        status=status,
        campaign_id=campaign_id,
        direction=direction,
        limit=limit,
        offset=offset,
    )
    base = service.api_base(request)
    calls = [service.summary(v, base) for v in views]
    return CallList(calls=calls, data=calls, total=total)


@router.get("/{id}", response_model=CallDetail)
async def get_call(request: Request, cid: CallId, key: SecretKey, store: Store) -> CallDetail:
    """One call record; another tenant's call answers CALL_NOT_FOUND."""
    return service.detail(await service.owned_call(store, key.tenant_id, cid), service.api_base(request))


@router.post("/{id}/transfer", response_model=CallActionAccepted)
async def transfer_call(cid: CallId, body: TransferRequest, key: SecretKey, svc: Svc) -> CallActionAccepted:
    """Hand the callee to a human: SIP REFER, or a bridged call when REFER is refused (mode auto)."""
    view = await service.live_call(svc, key, cid)
    target = await service.transfer_target(svc, key, view, body.to_number)
    assert svc.runtime is not None  # live_call checked it
    try:
        await svc.runtime.transfer_call(key.tenant_id, cid, target, body.mode)
    except CallRejected as exc:
        raise service.rejected(exc) from None
    return CallActionAccepted(call_id=cid, action="transfer")


@router.post("/{id}/hangup", response_model=CallActionAccepted)
async def hangup_call(cid: CallId, key: SecretKey, svc: Svc) -> CallActionAccepted:
    """End a live call."""
    await service.live_call(svc, key, cid)
    assert svc.runtime is not None  # live_call checked it
    try:
        await svc.runtime.hangup_call(key.tenant_id, cid)
    except CallRejected as exc:
        raise service.rejected(exc) from None
    return CallActionAccepted(call_id=cid, action="hangup")
