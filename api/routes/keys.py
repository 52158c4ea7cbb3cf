"""API key routes: list, mint and revoke the tenant's own keys (secret keys only)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from api.deps import SecretKey, Store, parse_id
from api.errors import NotFound
from api.schemas.directory import KeyCreate, KeyCreated, KeyList, KeyPublic, KeyRevoked

router = APIRouter(prefix="/keys", tags=["api keys"])


def key_id(id: str) -> UUID:
    return parse_id(id, "key id")


@router.get("", response_model=KeyList)
async def list_keys(key: SecretKey, store: Store) -> KeyList:
    """The tenant's keys, newest first, revoked ones included (prefixes only, never secrets)."""
    keys = await store.list_api_keys(key.tenant_id)
    return KeyList(
        total=len(keys),
        data=[
            KeyPublic(
                id=k.id, prefix=k.prefix, scope=k.scope, created_at=k.created_at, revoked_at=k.revoked_at
            )
            for k in keys
        ],
    )


@router.post("", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, key: SecretKey, store: Store) -> KeyCreated:
    """Mint a key; its plaintext is in this answer only."""
    new_id, plaintext = await store.create_api_key(key.tenant_id, publishable=body.publishable)
    stored = next(k for k in await store.list_api_keys(key.tenant_id) if k.id == new_id)
    return KeyCreated(
        id=new_id,
        prefix=stored.prefix,
        scope=stored.scope,
        created_at=stored.created_at,
        revoked_at=None,
        key=plaintext,
    )


@router.post("/{id}/revoke", response_model=KeyRevoked)
async def revoke_key(kid: Annotated[UUID, Depends(key_id)], key: SecretKey, store: Store) -> KeyRevoked:
    """Revoke one of the tenant's keys at once (the key in use may revoke itself)."""
    # revoke_api_key is not tenant-scoped: check ownership first so another tenant's id is a 404.
    if all(k.id != kid for k in await store.list_api_keys(key.tenant_id)):
        raise NotFound("KEY_NOT_FOUND", "API key not found")
    revoked = await store.revoke_api_key(kid)
    return KeyRevoked(id=kid, revoked=revoked)
