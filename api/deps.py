"""Request dependencies: the app's services, the caller's key (auth + rate limit), and id parsing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from api.errors import BadRequest, Forbidden, RateLimited, Unauthorized
from api.ratelimit import RateLimits, SharedBuckets, TokenBuckets
from api.runtime import ApiRuntime
from dialer.storage import SqlStore
from dialer.storage.directory import SECRET_SCOPE, hash_api_key
from dialer.webhooks import WebhookEmitter

# Routes with the seed's stricter allowance (they place real calls); every other route is "general".
_CALL_CREATION = frozenset({("POST", "/calls/create")})


@dataclass
class Services:
    """What the routes work with, built once per app by ``create_app`` and kept on ``app.state``."""

    store: SqlStore
    runtime: ApiRuntime | None
    limits: RateLimits = field(default_factory=RateLimits)
    buckets: TokenBuckets = field(default_factory=TokenBuckets)
    shared: SharedBuckets | None = None  # set: buckets live in the coordinator (Redis), not in-process
    webhooks: WebhookEmitter | None = None  # None: no events are sent (an API without a sender)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its tenant and its key's scope (``secret`` or ``publishable``)."""

    tenant_id: UUID
    scope: str
    key_hash: str

    @property
    def is_secret(self) -> bool:
        return self.scope == SECRET_SCOPE


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def store(request: Request) -> SqlStore:
    return services(request).store


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(request: Request) -> Principal:
    """The caller's key: 401 without one or with an unknown/revoked one, 429 once its bucket is empty."""
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("UNAUTHORIZED", "no API key: send X-API-Key or Authorization: Bearer")
    found = await store(request).resolve_api_key(key)
    if found is None:
        raise Unauthorized("INVALID_API_KEY", "API key is invalid or revoked")
    tenant_id, scope = found
    principal = Principal(tenant_id, scope, hash_api_key(key))
    await _spend(request, principal)
    return principal


async def _spend(request: Request, principal: Principal) -> None:
    svc = services(request)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    limit = svc.limits.call_creation if (request.method, path) in _CALL_CREATION else svc.limits.general
    # Bucket by key hash: the plaintext key never sits in memory longer than the request.
    bucket = f"{principal.key_hash}:{request.method}:{path}"
    wait = await svc.shared.take(bucket, limit) if svc.shared else svc.buckets.take(bucket, limit)
    if wait > 0:
        retry_after = str(max(1, math.ceil(wait)))
        raise RateLimited(
            "RATE_LIMITED",
            f"too many requests on this route; retry in {retry_after} s",
            headers={"Retry-After": retry_after},
        )


async def require_secret(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Only a secret key: publishable keys live in browsers and may not dial, read calls or administer."""
    if not principal.is_secret:
        raise Forbidden("INSUFFICIENT_SCOPE", "a publishable key (pk_live_) cannot do this; use a secret key")
    return principal


def parse_id(raw: str, code: str, what: str) -> UUID:
    """A path id as a UUID, or the seed's bad-format error for that resource."""
    try:
        return UUID(raw)
    except ValueError:
        raise BadRequest(code, f"{what} is not a valid UUID") from None


Store = Annotated[SqlStore, Depends(store)]
Svc = Annotated[Services, Depends(services)]
AnyKey = Annotated[Principal, Depends(authenticate)]
SecretKey = Annotated[Principal, Depends(require_secret)]
