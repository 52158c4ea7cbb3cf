"""Composition root: store, coordinator, rules, runtime and HTTP server built from Settings, then run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from config.settings import Settings
from dialer.coordination import make_coordinator
from dialer.regions import load_rules
from dialer.storage import SqlStore

log = logging.getLogger(__name__)


async def serve(settings: Settings, role: str = "all", *, ready: asyncio.Event | None = None) -> int:
    """Run the roles asked for until SIGINT/SIGTERM; returns the process exit code.

    ``ready`` is set once the SIP workers are up and the API listens (tests and `dialer demo` wait on it).
    """
    from api.app import create_app
    from dialer.runtime import Runtime
    from sip.supervisor import GatewayError

    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.database_url)
    store.migrate()
    coordinator = make_coordinator(settings.redis_url)
    rules = load_rules(settings.regional_rules_file)
    log.info("loaded %d regional calling rules", len(rules))
    runtime = Runtime(settings, store, coordinator, rules)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(store, runtime=runtime, metrics=runtime.metrics),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            lifespan="on",
        )
    )
    # Ours handle a signal outside server.serve(); inside it uvicorn swaps in its own, then restores
    # ours and re-raises the signal it caught, which lands here again harmlessly.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        try:
            await runtime.start()
        except GatewayError as exc:
            log.error("SIP gateway could not start: %s", exc)
            return 1
        serving = asyncio.create_task(server.serve(), name="http")
        for _ in range(600):  # uvicorn binds within milliseconds; 30 s means something is wrong
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        if server.started:
            log.info("API on http://%s:%d (role %s)", settings.http_host, settings.http_port, role)
            if ready is not None:
                ready.set()
        await serving
        return 0 if server.started else 1
    finally:
        await runtime.stop()
        await coordinator.close()
        store.dispose()
