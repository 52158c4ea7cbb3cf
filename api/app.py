"""The FastAPI application factory: services on app.state, the error mapping, and every router."""

from __future__ import annotations

from fastapi import FastAPI

import dialer
from api import errors
from api.deps import Services
from api.ratelimit import RateLimits, SharedBuckets
from api.routes import (
    agents,
    calls,
    campaigns,
    dnc,
    health,
    keys,
    numbers,
    prospects,
    tools,
    trunks,
)
from api.routes import metrics as metrics_route
from api.routes import webhooks as webhooks_route
from api.runtime import ApiRuntime
from dialer.metrics import Metrics
from dialer.ports import Coordinator
from dialer.storage import SqlStore
from dialer.webhooks import WebhookEmitter

_DESCRIPTION = (
    "REST API of the SIP gateway and campaign dialer. Authenticate with `X-API-Key: sk_live_...` "
    '(or `Authorization: Bearer ...`). Errors: `{"success": false, "error": {"code", "message"}}`.'
)


def create_app(
    store: SqlStore,
    *,
    runtime: ApiRuntime | None = None,
    limits: RateLimits | None = None,
    metrics: Metrics | None = None,
    webhooks: WebhookEmitter | None = None,
    coordinator: Coordinator | None = None,
) -> FastAPI:
    """Build the app around an already-migrated store (nothing global, nothing at import).

    ``runtime`` is the running dialer (None: campaign changes are stored only, calls cannot be placed);
    ``limits`` overrides the seed's rate limits (tests, deployments behind their own limiter);
    ``metrics`` is served on /metrics, with every request counted into it;
    ``coordinator`` (given when Redis is configured) holds the rate-limit buckets so replicas share them;
    ``webhooks`` receives campaign.started/paused/resumed from the API (its owner starts and stops it).
    """
    app = FastAPI(title="SIP dialer", version=dialer.__version__, description=_DESCRIPTION)
    app.state.services = Services(
        store=store,
        runtime=runtime,
        limits=limits or RateLimits(),
        webhooks=webhooks,
        shared=SharedBuckets(coordinator) if coordinator is not None else None,
    )
    errors.install(app)
    routers = (health, campaigns, prospects, numbers, calls, tools, trunks, agents, dnc, keys, webhooks_route)
    for module in routers:
        app.include_router(module.router)
    if metrics is not None:
        metrics_route.install(app, metrics)
    return app
