"""Phone number routes, the seed's Phone Numbers section: list, import onto a trunk, link, update, delete."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from api.deps import AnyKey, SecretKey, Store
from api.errors import Conflict, NotFound, invalid_field
from api.schemas.numbers import (
    NumberDeleted,
    NumberImport,
    NumberImported,
    NumberLink,
    NumberLinked,
    NumberList,
    NumberPublic,
    NumberUpdate,
)
from dialer.phone import InvalidPhoneNumber, country_of, parse_phone
from dialer.storage import Conflict as StoredAlready
from dialer.storage import NumberRecord, SqlStore, TrunkRecord

router = APIRouter(prefix="/phone-numbers", tags=["phone numbers"])


def _public(n: NumberRecord) -> NumberPublic:
    return NumberPublic(
        id=n.id,
        number=n.number,
        country_code=n.country,
        label=n.label,
        client_id=n.tenant_id,
        trunk_id=n.trunk_id,
        is_active=n.active,
        is_vanira_internal=n.managed,
        agent_id=n.agent_id,
        max_concurrent_calls=n.max_concurrent_calls,
        daily_cap=n.daily_cap,
    )


async def _e164(store: SqlStore, tenant_id: UUID, raw: str, field: str = "phone_number") -> str:
    region = await store.tenant_region(tenant_id)
    try:
        return parse_phone(raw, region)
    except InvalidPhoneNumber as exc:
        raise invalid_field(field, exc.reason) from None


async def _trunk(store: SqlStore, tenant_id: UUID, trunk_id: UUID | None) -> TrunkRecord:
    if trunk_id is not None:
        trunk = await store.tenant_trunk(tenant_id, trunk_id)
        if trunk is None:
            raise NotFound("TRUNK_NOT_FOUND", "trunk not found")
        return trunk
    trunks = await store.list_trunks(tenant_id)
    if len(trunks) != 1:
        why = "you have no trunk yet (POST /trunks)" if not trunks else "you have several trunks"
        raise invalid_field("trunk_id", f"required: {why}")
    return trunks[0]


async def _number(store: SqlStore, tenant_id: UUID, raw: str, field: str = "number") -> NumberRecord:
    found = await store.find_number(tenant_id, await _e164(store, tenant_id, raw, field))
    if found is None:
        raise NotFound("PHONE_NUMBER_NOT_FOUND", "phone number not found")
    return found


@router.get("", response_model=NumberList)
async def list_numbers(key: AnyKey, store: Store) -> NumberList:
    """The tenant's numbers."""
    numbers = [_public(n) for n in await store.list_numbers(key.tenant_id)]
    return NumberList(numbers=numbers, data=numbers, total=len(numbers))


@router.post("/import", response_model=NumberImported)
async def import_number(body: NumberImport, key: SecretKey, store: Store) -> NumberImported:
    """Add a number on one of your trunks; CONFLICT if you have it already."""
    number = await _e164(store, key.tenant_id, body.phone_number)
    trunk = await _trunk(store, key.tenant_id, body.trunk_id)
    if body.agent_id is not None and await store.tenant_agent(key.tenant_id, body.agent_id) is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    country = country_of(number)
    try:
        number_id = await store.import_number(
            key.tenant_id,
            number,
            trunk.id,
            country=country,
            agent_id=body.agent_id,
            label=body.label,
            max_concurrent_calls=body.max_concurrent_calls,
            daily_cap=body.daily_cap,
        )
    except StoredAlready:
        raise Conflict("CONFLICT", "Number already exists in system; delete it first") from None
    return NumberImported(
        phone_number=number,
        agent_id=body.agent_id,
        trunk_endpoint=trunk.spec.name,
        outbound_trunk_id=trunk.id,
        assigned=body.agent_id is not None,
        # Nothing to reload: the gateway reads numbers from the database on every call.
        service_reloaded=True,
        id=number_id,
        country_code=country,
    )


@router.put("/link", response_model=NumberLinked)
async def link_number(body: NumberLink, key: SecretKey, store: Store) -> NumberLinked:
    """Route the number's inbound calls to another agent."""
    found = await _number(store, key.tenant_id, body.phone_number, "phone_number")
    if await store.tenant_agent(key.tenant_id, body.agent_id) is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    if not await store.link_number(key.tenant_id, found.number, body.agent_id):
        raise NotFound("PHONE_NUMBER_NOT_FOUND", "phone number not found")
    return NumberLinked(phone_number=found.number, agent_id=body.agent_id)


@router.patch("/{number}", response_model=NumberPublic)
async def update_number(number: str, body: NumberUpdate, key: SecretKey, store: Store) -> NumberPublic:
    """Change a number's caps, label or active flag (``+`` may be sent URL-encoded as %2B)."""
    found = await _number(store, key.tenant_id, number)
    changes = body.model_dump(exclude_none=True)
    if "is_active" in changes:
        changes["active"] = changes.pop("is_active")
    if not changes:
        raise invalid_field("", "No fields provided")
    await store.update_number(key.tenant_id, found.number, **changes)
    updated = await _number(store, key.tenant_id, found.number)
    return _public(updated)


@router.delete("/{number}", response_model=NumberDeleted)
async def delete_number(number: str, key: SecretKey, store: Store) -> NumberDeleted:
    """Remove a number (URL-encode the ``+`` as %2B); its campaign allocations go with it."""
    found = await _number(store, key.tenant_id, number)
    deleted = await store.delete_number(key.tenant_id, found.number)
    if not deleted:
        raise NotFound("PHONE_NUMBER_NOT_FOUND", "phone number not found")
    # The agent link and campaign allocations are rows of the number, gone in the same transaction.
    return NumberDeleted(phone_number=found.number, deleted=True, unassigned=True)
