"""Request dependencies: the app's services, the caller's key (auth + rate limit), and id parsing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Forbidden, RateLimited, Unauthorized, invalid_field
from api.ratelimit import RateLimits, SharedBuckets, TokenBuckets
from api.runtime import ApiRuntime
from dialer.recordings import RecordingStorage
from dialer.storage import SqlStore
from dialer.storage.directory import SECRET_SCOPE, hash_api_key
from dialer.webhook_targets import WebhookTargets
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
    webhook_targets: WebhookTargets = field(default_factory=WebhookTargets)  # the SSRF guard's policy
    recordings: RecordingStorage | None = None  # where call recordings are read from (None: nowhere)
    public_url: str | None = None  # the API's URL for recording_url (None: each request's own)


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


# Declared as security schemes so that the OpenAPI document (and /docs' "Authorize") knows them;
# auto_error off: a missing key is answered by ``authenticate`` in the seed's error body.
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="sk_live_... or pk_live_...")
_BEARER = HTTPBearer(auto_error=False, description="the same key as Authorization: Bearer <key>")


async def authenticate(
    request: Request,
    api_key: Annotated[str | None, Security(_API_KEY)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> Principal:
    """The caller's key: 401 without one or with an unknown/revoked one, 429 once its bucket is empty."""
    key = (api_key or "").strip() or (bearer.credentials.strip() if bearer is not None else "")
    if not key:
        raise Unauthorized("UNAUTHORIZED", "no API key: send X-API-Key or Authorization: Bearer")
    found = await store(request).resolve_api_key(key)
    if found is None:
        raise Unauthorized("INVALID_API_KEY", "API key is invalid or revoked")
    tenant_id, scope = found
    principal = Principal(tenant_id, scope, hash_api_key(key))
    await spend(request, principal)
    return principal


async def spend(request: Request, principal: Principal) -> None:
    """Take one request from the key's allowance on this route; RateLimited once it is spent."""
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


async def refuse_nul(request: Request) -> None:
    """Every route: a NUL character anywhere in the request (body, query, path) is a 400.

    PostgreSQL cannot store NUL in text or JSON, so such a value would otherwise reach the database
    and come back as a 500 (SQLite would store it, and the two backends would differ).
    """
    body = await request.body()  # cached: the route reads it again
    params = [*request.path_params.values(), *request.query_params.values()]
    if b"\x00" in body or b"\\u0000" in body or any("\x00" in str(value) for value in params):
        raise invalid_field("", "NUL characters are not allowed in a request")


def parse_id(raw: str, what: str, field: str = "id") -> UUID:
    """A path id as a UUID, else VALIDATION_ERROR naming the id (the seed's "not a valid UUID")."""
    try:
        return UUID(raw)
    except ValueError:
        raise invalid_field(field, f"{what} is not a valid UUID") from None


#: Paging of list routes: at most 500 rows a page, and an offset a 64-bit database column can hold
#: (an unbounded one reached SQLite as an integer overflow, a 500).
MAX_OFFSET = 10**12
PageLimit = Annotated[int, Query(ge=1, le=500)]
PageOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

Store = Annotated[SqlStore, Depends(store)]
Svc = Annotated[Services, Depends(services)]
AnyKey = Annotated[Principal, Depends(authenticate)]
SecretKey = Annotated[Principal, Depends(require_secret)]
