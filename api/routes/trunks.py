"""Trunk routes: create, list, read, change and remove the tenant's SIP trunks (passwords never returned)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from api.deps import SecretKey, Store, parse_id
from api.errors import Conflict, NotFound, invalid, invalid_field
from api.schemas.directory import Deleted, TrunkCreate, TrunkList, TrunkPublic, TrunkUpdate
from api.services.trunks import require_resolvable
from dialer.storage import Conflict as StoredAlready
from dialer.storage import TrunkRecord, TrunkSpec

router = APIRouter(prefix="/trunks", tags=["trunks"])


def trunk_id(id: str) -> UUID:
    return parse_id(id, "trunk id")


TrunkId = Annotated[UUID, Depends(trunk_id)]


def _public(t: TrunkRecord) -> TrunkPublic:
    s = t.spec
    return TrunkPublic(
        id=t.id,
        name=s.name,
        host=s.host,
        port=s.port,
        transport=s.transport,
        username=s.username,
        has_password=bool(s.password),
        register=s.register,
        outbound_proxy=s.outbound_proxy,
        max_concurrent_calls=s.max_concurrent_calls,
        max_cps=s.max_cps,
        refer_supported=s.refer_supported,
        refer_uri_style=s.refer_uri_style,
        allowed_countries=list(s.allowed_countries),
        accept_inbound_refer=s.accept_inbound_refer,
        inbound_cidrs=list(s.inbound_cidrs),
    )


@router.post("", response_model=TrunkPublic, status_code=201)
async def create_trunk(body: TrunkCreate, key: SecretKey, store: Store) -> TrunkPublic:
    """Add a SIP trunk; CONFLICT when you have one with that name, TRUNK_HOST_UNRESOLVABLE (400) when
    its host (or its outbound proxy's host, if it has one) does not resolve."""
    await require_resolvable(body.host, body.outbound_proxy)
    values = body.model_dump()
    values["register"] = values.pop("register_enabled")
    values["allowed_countries"] = tuple(values["allowed_countries"])
    values["inbound_cidrs"] = tuple(values["inbound_cidrs"])
    try:
        new_id = await store.create_trunk(key.tenant_id, TrunkSpec(**values))
    except StoredAlready:
        raise Conflict("CONFLICT", "a trunk with this name exists already") from None
    created = await store.tenant_trunk(key.tenant_id, new_id)
    assert created is not None
    return _public(created)


@router.get("", response_model=TrunkList)
async def list_trunks(key: SecretKey, store: Store) -> TrunkList:
    """The tenant's trunks by name."""
    data = [_public(t) for t in await store.list_trunks(key.tenant_id)]
    return TrunkList(data=data, total=len(data))


@router.get("/{id}", response_model=TrunkPublic)
async def get_trunk(tid: TrunkId, key: SecretKey, store: Store) -> TrunkPublic:
    """One trunk."""
    found = await store.tenant_trunk(key.tenant_id, tid)
    if found is None:
        raise NotFound("TRUNK_NOT_FOUND", "trunk not found")
    return _public(found)


@router.patch("/{id}", response_model=TrunkPublic)
async def update_trunk(tid: TrunkId, body: TrunkUpdate, key: SecretKey, store: Store) -> TrunkPublic:
    """Change some settings; absent fields stay. A new password is stored, never echoed. A new host or
    outbound proxy must resolve, as on creation (TRUNK_HOST_UNRESOLVABLE)."""
    changes = body.model_dump(exclude_unset=True)
    if "register_enabled" in changes:
        changes["register"] = changes.pop("register_enabled")
    nullable = {"username", "password", "outbound_proxy"}
    if bad := sorted(k for k, v in changes.items() if v is None and k not in nullable):
        raise invalid([{"field": name, "reason": "may not be null"} for name in bad])
    if not changes:
        raise invalid_field("", "No fields provided")
    if "host" in changes or "outbound_proxy" in changes:
        current = await store.tenant_trunk(key.tenant_id, tid)
        if current is None:
            raise NotFound("TRUNK_NOT_FOUND", "trunk not found")
        proxy = changes.get("outbound_proxy", current.spec.outbound_proxy)
        await require_resolvable(changes.get("host", current.spec.host), proxy)
    try:
        found = await store.update_trunk(key.tenant_id, tid, changes)
    except StoredAlready:
        raise Conflict("CONFLICT", "a trunk with this name exists already") from None
    updated = await store.tenant_trunk(key.tenant_id, tid) if found else None
    if updated is None:
        raise NotFound("TRUNK_NOT_FOUND", "trunk not found")
    return _public(updated)


@router.delete("/{id}", response_model=Deleted)
async def delete_trunk(tid: TrunkId, key: SecretKey, store: Store) -> Deleted:
    """Remove a trunk; 409 CONFLICT while phone numbers still use it."""
    try:
        found = await store.delete_trunk(key.tenant_id, tid)
    except StoredAlready as exc:
        raise Conflict("CONFLICT", f"trunk is in use: {exc}") from None
    if not found:
        raise NotFound("TRUNK_NOT_FOUND", "trunk not found")
    return Deleted(id=tid)
