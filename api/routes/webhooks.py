"""Webhook routes: subscribe endpoints to events, list and remove them, read their delivery log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from api.deps import PageLimit, PageOffset, SecretKey, Store, Svc, parse_id
from api.errors import VALIDATION_ERROR, BadRequest, NotFound, invalid_field
from api.schemas.webhooks import (
    DeliveryList,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookList,
    WebhookPublic,
)
from dialer.storage.webhooks import WebhookRecord
from dialer.webhook_targets import TargetRefused

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def webhook_id(id: str) -> UUID:
    return parse_id(id, "webhook id")


WebhookId = Annotated[UUID, Depends(webhook_id)]


def _public(record: WebhookRecord) -> WebhookPublic:
    return WebhookPublic(
        id=record.id,
        url=record.url,
        events=list(record.events),
        description=record.description,
        created_at=record.created_at,
    )


@router.post("", response_model=WebhookCreated, status_code=201)
async def create_webhook(body: WebhookCreate, key: SecretKey, svc: Svc) -> WebhookCreated:
    """Subscribe an endpoint; the response holds its signing ``secret``, shown only this once.

    The URL's host must resolve to public addresses only (no loopback, private, link-local/metadata,
    multicast): 400 ``WEBHOOK_URL_NOT_ALLOWED`` or ``WEBHOOK_URL_UNRESOLVABLE`` otherwise, unless the
    operator set ``DIALER_WEBHOOK_ALLOW_PRIVATE=true``. Deliveries check again before every POST.
    """
    try:
        await svc.webhook_targets.check(body.url)
    except TargetRefused as exc:
        if exc.code == VALIDATION_ERROR:
            raise invalid_field("url", exc.message) from None
        raise BadRequest(exc.code, exc.message) from None
    store = svc.store
    new_id, secret = await store.create_webhook(key.tenant_id, body.url, list(body.events), body.description)
    created = await store.tenant_webhook(key.tenant_id, new_id)
    assert created is not None
    return WebhookCreated(**_public(created).model_dump(), secret=secret)


@router.get("", response_model=WebhookList)
async def list_webhooks(key: SecretKey, store: Store) -> WebhookList:
    """The tenant's endpoints (secrets are never listed)."""
    data = [_public(w) for w in await store.list_webhooks(key.tenant_id)]
    return WebhookList(data=data, total=len(data))


@router.delete("/{id}", response_model=WebhookDeleted)
async def delete_webhook(wid: WebhookId, key: SecretKey, store: Store) -> WebhookDeleted:
    """Unsubscribe: nothing more is sent, pending deliveries included; the log goes with it."""
    if not await store.delete_webhook(key.tenant_id, wid):
        raise NotFound("WEBHOOK_NOT_FOUND", "webhook not found")
    return WebhookDeleted(id=wid)


@router.get("/{id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    wid: WebhookId,
    key: SecretKey,
    store: Store,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> DeliveryList:
    """The endpoint's delivery log, newest first: status, attempts, last HTTP status and error."""
    if await store.tenant_webhook(key.tenant_id, wid) is None:
        raise NotFound("WEBHOOK_NOT_FOUND", "webhook not found")
    rows, total = await store.list_deliveries(wid, limit=limit, offset=offset)
    data = [DeliveryPublic(**asdict(r)) for r in rows]
    return DeliveryList(data=data, total=total)
