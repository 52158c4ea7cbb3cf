"""Composition root: store, coordinator, rules, runtime and HTTP server built from Settings, then run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from config.settings import Settings
from dialer.coordination import make_coordinator
from dialer.ports import Coordinator
from dialer.regions import load_rules
from dialer.storage import SqlStore

if TYPE_CHECKING:
    from dialer.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Node:
    """One dialer process's parts, built and migrated but not started (``dialer demo`` seeds it first)."""

    settings: Settings
    store: SqlStore
    coordinator: Coordinator
    runtime: Runtime
    server: uvicorn.Server

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"


def build_node(settings: Settings) -> Node:
    """Store (migrated), coordinator, regional rules, runtime and the API server, from Settings."""
    from api.app import create_app
    from dialer.runtime import Runtime

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
            create_app(
                store,
                runtime=runtime,
                metrics=runtime.metrics,
                webhooks=runtime.webhooks,
                coordinator=coordinator if settings.redis_url else None,  # API replicas share rate limits
            ),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            lifespan="on",
        )
    )
    return Node(settings, store, coordinator, runtime, server)


async def run_node(node: Node, role: str = "all", *, ready: asyncio.Event | None = None) -> int:
    """Start the runtime and the API, serve until SIGINT/SIGTERM (or ``node.server.should_exit``),
    then hang up, record every call and free everything; returns the process exit code.

    ``ready`` is set once the SIP workers are up and the API listens.
    """
    from sip.supervisor import GatewayError

    server, runtime = node.server, node.runtime
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
            log.info("API on %s (role %s)", node.base_url, role)
            if ready is not None:
                ready.set()
        await serving
        return 0 if server.started else 1
    finally:
        await runtime.stop()
        await node.coordinator.close()
        node.store.dispose()


async def serve(settings: Settings, role: str = "all", *, ready: asyncio.Event | None = None) -> int:
    """Run the roles asked for until SIGINT/SIGTERM; returns the process exit code.

    ``ready`` is set once the SIP workers are up and the API listens (tests wait on it).
    """
    return await run_node(build_node(settings), role, ready=ready)
