"""The FastAPI application factory; routes are added per resource as the API grows."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

import dialer
from dialer.storage import SqlStore


def create_app(store: SqlStore) -> FastAPI:
    """Build the app around an already-migrated store (nothing global, nothing at import)."""
    app = FastAPI(title="SIP dialer", version=dialer.__version__)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await store.ping()
            db_ok = True
        except Exception:
            db_ok = False
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return {
            "status": "healthy" if db_ok else "unhealthy",
            "timestamp": datetime.now(UTC).isoformat(),
            "version": dialer.__version__,
            "components": {"database": {"healthy": db_ok, "latency_ms": latency_ms}},
        }

    return app
