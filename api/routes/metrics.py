"""GET /metrics (Prometheus exposition) and the middleware that counts every REST request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dialer.metrics import Metrics

UNMATCHED = "unmatched"  # label of requests no route matched: their raw path may hold anything


def route_template(request: Request) -> str:
    """The path template of the route that served ``request`` (``/calls/{call_id}``), or UNMATCHED.

    The router records the matched route in the scope while handling the request, so read it after.
    """
    route = request.scope.get("route")
    return str(getattr(route, "path", UNMATCHED))


def install(app: FastAPI, metrics: Metrics) -> None:
    """Serve ``metrics`` on /metrics and time every request into it."""
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", include_in_schema=False)
    async def exposition() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            metrics.http_request(
                request.method, route_template(request), status, time.perf_counter() - started
            )
