"""Liveness (/health, every component's state) and readiness (/ready: 503 until storage answers)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import dialer
from api.deps import Svc
from api.errors import error_body

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


async def _components(svc: Svc) -> dict[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        await svc.store.ping()
        db_ok = True
    except Exception:
        log.warning("health: database ping failed", exc_info=True)
        db_ok = False
    components: dict[str, dict[str, Any]] = {
        "database": {"healthy": db_ok, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    }
    if svc.runtime is not None:
        try:
            components.update(await svc.runtime.health())
        except Exception:
            log.warning("health: runtime health failed", exc_info=True)
            components["runtime"] = {"healthy": False, "latency_ms": 0.0}
    return components


@router.get("/health")
async def health(svc: Svc) -> dict[str, Any]:
    """Always 200 while the process serves HTTP; ``status`` says whether every component is healthy."""
    components = await _components(svc)
    healthy = all(bool(c.get("healthy")) for c in components.values())
    return {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": datetime.now(UTC).isoformat(),
        "version": dialer.__version__,
        "components": components,
    }


@router.get("/ready", responses={503: {"description": "a component is not ready"}})
async def ready(svc: Svc) -> JSONResponse:
    """200 when this replica can take traffic (storage and runtime healthy), else 503 in the error body."""
    components = await _components(svc)
    down = sorted(
        name for name, c in components.items() if not c.get("healthy") and c.get("gates_readiness", True)
    )
    if down:
        body = error_body("NOT_READY", f"not ready: {', '.join(down)}")
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "components": components})
