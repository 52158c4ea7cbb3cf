"""The FastAPI application factory: services on app.state, the error mapping, and every router."""

from __future__ import annotations

from fastapi import FastAPI

import dialer
from api import errors
from api.deps import Services
from api.ratelimit import RateLimits
from api.routes import agents, calls, campaigns, dnc, health, keys, numbers, prospects, trunks
from api.routes import metrics as metrics_route
from api.runtime import ApiRuntime
from dialer.metrics import Metrics
from dialer.storage import SqlStore

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
) -> FastAPI:
    """Build the app around an already-migrated store (nothing global, nothing at import).

    ``runtime`` is the running dialer (None: campaign changes are stored only, calls cannot be placed);
    ``limits`` overrides the seed's rate limits (tests, deployments behind their own limiter);
    ``metrics`` is served on /metrics, with every request counted into it.
    """
    app = FastAPI(title="SIP dialer", version=dialer.__version__, description=_DESCRIPTION)
    app.state.services = Services(store=store, runtime=runtime, limits=limits or RateLimits())
    errors.install(app)
    for module in (health, campaigns, prospects, numbers, calls, trunks, agents, dnc, keys):
        app.include_router(module.router)
    if metrics is not None:
        metrics_route.install(app, metrics)
    return app
