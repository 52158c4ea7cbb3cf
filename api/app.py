"""The FastAPI application factory: services on app.state, the error mapping, and every router."""

from __future__ import annotations

from fastapi import Depends, FastAPI

import dialer
from api import errors, openapi
from api.deps import Services, refuse_nul
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
    twilio,
)
from api.routes import metrics as metrics_route
from api.routes import (
    recordings as recordings_route,
)
from api.routes import webhooks as webhooks_route
from api.runtime import ApiRuntime
from dialer.metrics import Metrics
from dialer.ports import Coordinator
from dialer.recordings import RecordingStorage
from dialer.storage import SqlStore
from dialer.webhook_targets import WebhookTargets
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
    public: bool = True,
    webhook_allow_private: bool | None = None,
    recordings: RecordingStorage | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """Build the app around an already-migrated store (nothing global, nothing at import).

    ``runtime`` is the running dialer (None: campaign changes are stored only, calls cannot be placed);
    ``limits`` overrides the seed's rate limits (tests, deployments behind their own limiter);
    ``metrics`` is served on /metrics, with every request counted into it;
    ``coordinator`` (given when Redis is configured) holds the rate-limit buckets so replicas share them;
    ``webhooks`` receives campaign.started/paused/resumed from the API (its owner starts and stops it);
    ``public`` False serves only /health, /ready and /metrics (gateway and scheduler nodes);
    ``webhook_allow_private`` lets webhook URLs be private (None: as ``webhooks``' sender, else refused);
    ``recordings`` is where ``GET /calls/{id}/recording`` reads recordings (None: none served), and
    ``public_url`` the base of ``recording_url`` (None: the request's own).
    """
    app = FastAPI(
        title="SIP dialer",
        version=dialer.__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json" if public else None,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: openapi.install_docs serves them
        redoc_url=None,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.services = Services(
        store=store,
        runtime=runtime,
        limits=limits or RateLimits(),
        webhooks=webhooks,
        shared=SharedBuckets(coordinator) if coordinator is not None else None,
        webhook_targets=_webhook_targets(webhooks, webhook_allow_private),
        recordings=recordings,
        public_url=public_url,
    )
    errors.install(app)
    routers = (
        health,
        campaigns,
        prospects,
        numbers,
        calls,
        recordings_route,
        tools,
        trunks,
        agents,
        dnc,
        keys,
        webhooks_route,
        twilio,
    )
    included = routers if public else (health,)
    for module in included:
        app.include_router(module.router)
    if metrics is not None:
        metrics_route.install(app, metrics)
    if public:
        # the seed's examples, each route's real error answers, the key schemes
        openapi.install(app, [route for module in included for route in module.router.routes])
        openapi.install_docs(app)  # /docs and /redoc, offline
    return app


def _webhook_targets(webhooks: WebhookEmitter | None, allow_private: bool | None) -> WebhookTargets:
    """The URL policy of subscriptions: the one deliveries use, so what is accepted is also sent."""
    if allow_private is not None:
        return WebhookTargets(allow_private=allow_private)
    return webhooks.sender.targets if webhooks is not None else WebhookTargets()
