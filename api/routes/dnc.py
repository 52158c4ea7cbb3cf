"""Do-not-call routes: adding a number stops every waiting attempt to it in every campaign at once."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PageLimit, PageOffset, SecretKey, Store
from api.errors import NotFound, invalid_field
from api.schemas.directory import DncAdded, DncCreate, DncList, DncPublic, DncRemoved
from dialer.phone import InvalidPhoneNumber, parse_phone

router = APIRouter(prefix="/dnc", tags=["do not call"])


@router.post("", response_model=DncAdded, status_code=201)
async def add_dnc(body: DncCreate, key: SecretKey, store: Store) -> DncAdded:
    """Put a number on the tenant's do-not-call list (idempotent)."""
    try:
        phone = parse_phone(body.phone, await store.tenant_region(key.tenant_id))
    except InvalidPhoneNumber as exc:
        raise invalid_field("phone", exc.reason) from None
    stopped = await store.add_dnc(key.tenant_id, phone, body.reason)
    return DncAdded(phone=phone, stopped_prospects=stopped)


@router.get("", response_model=DncList)
async def list_dnc(
    key: SecretKey,
    store: Store,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> DncList:
    """A page of the do-not-call list, newest first."""
    entries, total = await store.list_dnc(key.tenant_id, limit=limit, offset=offset)
    data = [DncPublic(phone=e.phone, reason=e.reason, created_at=e.created_at) for e in entries]
    return DncList(data=data, total=total)


@router.delete("/{phone}", response_model=DncRemoved)
async def remove_dnc(phone: str, key: SecretKey, store: Store) -> DncRemoved:
    """Take a number off the list (URL-encode the ``+`` as ``%2B``); prospects it stopped stay stopped."""
    try:
        normalised = parse_phone(phone, await store.tenant_region(key.tenant_id))
    except InvalidPhoneNumber as exc:
        raise invalid_field("phone", exc.reason) from None
    if not await store.remove_dnc(key.tenant_id, normalised):
        raise NotFound("DNC_ENTRY_NOT_FOUND", "this number is not on your do-not-call list")
    return DncRemoved(phone=normalised, removed=True)
