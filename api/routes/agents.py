"""Agent routes: the voice workers calls are bridged to (WebSocket media stream or SIP URI), CRUD."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from api.deps import AnyKey, SecretKey, Store, parse_id
from api.errors import Conflict, NotFound, invalid_field
from api.schemas.directory import AgentCreate, AgentList, AgentPublic, AgentUpdate, Deleted
from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.storage import Conflict as StoredAlready
from dialer.storage import SqlStore
from dialer.storage.catalog import AgentRecord

router = APIRouter(prefix="/agents", tags=["agents"])


def agent_id(id: str) -> UUID:
    return parse_id(id, "agent id")


AgentId = Annotated[UUID, Depends(agent_id)]


async def _transfer_number(store: SqlStore, tenant_id: UUID, raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return parse_phone(raw, await store.tenant_region(tenant_id))
    except InvalidPhoneNumber as exc:
        raise invalid_field("transfer_number", exc.reason) from None


def _public(a: AgentRecord) -> AgentPublic:
    return AgentPublic(
        id=a.id,
        name=a.name,
        worker_url=a.worker_url,
        transfer_number=a.transfer_number,
        client_id=a.tenant_id,
    )


@router.post("", response_model=AgentPublic, status_code=201)
async def create_agent(body: AgentCreate, key: SecretKey, store: Store) -> AgentPublic:
    """Add a voice worker; ``transfer_number`` is where human transfers go by default."""
    transfer = await _transfer_number(store, key.tenant_id, body.transfer_number)
    new_id = await store.create_agent(key.tenant_id, body.name, body.worker_url, transfer)
    created = await store.tenant_agent(key.tenant_id, new_id)
    assert created is not None
    return _public(created)


@router.get("", response_model=AgentList)
async def list_agents(key: AnyKey, store: Store) -> AgentList:
    """The tenant's agents by name."""
    data = [_public(a) for a in await store.list_agents(key.tenant_id)]
    return AgentList(data=data, total=len(data))


@router.get("/{id}", response_model=AgentPublic)
async def get_agent(aid: AgentId, key: AnyKey, store: Store) -> AgentPublic:
    """One agent."""
    found = await store.tenant_agent(key.tenant_id, aid)
    if found is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    return _public(found)


@router.patch("/{id}", response_model=AgentPublic)
async def update_agent(aid: AgentId, body: AgentUpdate, key: SecretKey, store: Store) -> AgentPublic:
    """Change name, worker URL or transfer number (null removes the transfer number)."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise invalid_field("", "No fields provided")
    if changes.get("name", "") is None or ("worker_url" in changes and changes["worker_url"] is None):
        raise invalid_field("name" if changes.get("name", "") is None else "worker_url", "may not be null")
    if "transfer_number" in changes:
        changes["transfer_number"] = await _transfer_number(store, key.tenant_id, changes["transfer_number"])
    updated = (
        await store.tenant_agent(key.tenant_id, aid)
        if await store.update_agent(key.tenant_id, aid, changes)
        else None
    )
    if updated is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    return _public(updated)


@router.delete("/{id}", response_model=Deleted)
async def delete_agent(aid: AgentId, key: SecretKey, store: Store) -> Deleted:
    """Remove an agent; 409 CONFLICT while campaigns or phone numbers are linked to it."""
    try:
        found = await store.delete_agent(key.tenant_id, aid)
    except StoredAlready as exc:
        raise Conflict("CONFLICT", f"agent is in use: {exc}") from None
    if not found:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    return Deleted(id=aid)
