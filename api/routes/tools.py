"""The seed's ``human_transfer`` server tool: the voice worker's platform POSTs here mid-call."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.deps import SecretKey, Svc
from api.errors import invalid_field
from api.runtime import CallRejected
from api.schemas.calls import HumanTransferResult, HumanTransferTool
from api.services import calls as service

router = APIRouter(tags=["calls"])


def _tool_number(raw: str | None) -> str | None:
    """The seed's example sends international digits without '+' (``919182517283``): add it back."""
    if raw is None:
        return None
    raw = raw.strip()
    return f"+{raw}" if raw.isdigit() and len(raw) >= 11 else raw


@router.post("/webhook/human-transfer", response_model=HumanTransferResult)
async def human_transfer(
    body: HumanTransferTool,
    key: SecretKey,
    svc: Svc,
    call_id: Annotated[UUID | None, Query(description="The live call, if not in the body")] = None,
) -> HumanTransferResult:
    """Transfer the live call to a human (SIP REFER, bridged when refused), as the seed's tool does.

    Authenticated by API key like every route (put ``X-API-Key`` in the tool's ``request.headers``).
    """
    cid = body.call_id or call_id
    if cid is None:
        raise invalid_field("call_id", "required (in the body or the query)")
    view = await service.live_call(svc, key, cid)
    target = await service.transfer_target(svc, key, view, _tool_number(body.to_number))
    assert svc.runtime is not None  # live_call checked it
    try:
        await svc.runtime.transfer_call(key.tenant_id, cid, target, "auto")
    except CallRejected as exc:
        raise service.rejected(exc) from None
    return HumanTransferResult(call_id=cid)
