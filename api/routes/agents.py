"""Agent routes: the voice workers calls are bridged to (WebSocket media stream or SIP URI)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from api.deps import AnyKey, SecretKey, Store, parse_id
from api.errors import BadRequest, NotFound
from api.schemas.directory import AgentCreate, AgentList, AgentPublic
from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.storage.catalog import AgentRecord

router = APIRouter(prefix="/agents", tags=["agents"])


def agent_id(id: str) -> UUID:
    return parse_id(id, "BAD_REQUEST_FORMAT", "agent id")


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
    transfer = None
    if body.transfer_number:
        try:
            transfer = parse_phone(body.transfer_number, await store.tenant_region(key.tenant_id))
        except InvalidPhoneNumber as exc:
            raise BadRequest("VALIDATION_ERROR", f"transfer_number: {exc.reason}") from None
    new_id = await store.create_agent(key.tenant_id, body.name, body.worker_url, transfer)
    created = await store.tenant_agent(key.tenant_id, new_id)
    assert created is not None
    return _public(created)


@router.get("", response_model=AgentList)
async def list_agents(key: AnyKey, store: Store) -> AgentList:
    """The tenant's agents by name."""
    return AgentList(data=[_public(a) for a in await store.list_agents(key.tenant_id)])


@router.get("/{id}", response_model=AgentPublic)
async def get_agent(aid: Annotated[UUID, Depends(agent_id)], key: AnyKey, store: Store) -> AgentPublic:
    """One agent."""
    found = await store.tenant_agent(key.tenant_id, aid)
    if found is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    return _public(found)
