"""Composition root: builds store, coordinator, rules and the HTTP server from Settings, then runs them."""

from __future__ import annotations

import logging

import uvicorn

from config.settings import Settings
from dialer.coordination import make_coordinator
from dialer.regions import load_rules
from dialer.storage import SqlStore

log = logging.getLogger(__name__)


async def serve(settings: Settings, role: str = "all") -> int:
    """Run the roles asked for until interrupted; returns the process exit code."""
    from api.app import create_app

    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.database_url)
    store.migrate()
    coordinator = make_coordinator(settings.redis_url)
    rules = load_rules(settings.regional_rules_file)
    log.info("loaded %d regional calling rules", len(rules))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(store),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            lifespan="on",
        )
    )
    log.info("API on http://%s:%d (role %s)", settings.http_host, settings.http_port, role)
    try:
        await server.serve()
    finally:
        await coordinator.close()
        store.dispose()
    return 0
