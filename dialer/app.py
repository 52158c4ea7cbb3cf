"""Composition root: store, coordinator, rules, the parts of one role and the HTTP server, from Settings.

Roles (``dialer serve --role``): ``all`` runs everything in one process (the embedded default);
``gateway`` runs SIP workers, the dispatcher, API-placed calls and inbound calls, and takes call
commands from API nodes through the coordinator; ``scheduler`` runs the leader-elected scheduled
starts; ``api`` serves the REST API and reaches gateways through the coordinator. Gateway and
scheduler nodes serve /health, /ready and /metrics only: the public API lives on API nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import uvicorn

from config.settings import Settings
from dialer.cli import ROLES
from dialer.coordination import make_coordinator
from dialer.ports import Coordinator
from dialer.regions import load_rules
from dialer.storage import SqlStore

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dialer.runtime import Runtime

log = logging.getLogger(__name__)


class RoleError(Exception):
    """The settings cannot run the role asked for (e.g. a split role without Redis)."""


class Part(Protocol):
    """A long-running part of a node: started in order, stopped in reverse order."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Node:
    """One dialer process's parts, built and migrated but not started (``dialer demo`` seeds it first)."""

    settings: Settings
    store: SqlStore
    coordinator: Coordinator
    server: uvicorn.Server
    role: str = "all"
    parts: list[Part] = field(default_factory=list)
    gateway: Runtime | None = None  # the SIP side (roles all and gateway)

    @property
    def runtime(self) -> Runtime:
        """The gateway runtime of an ``all`` or ``gateway`` node."""
        if self.gateway is None:
            raise RoleError(f"a {self.role} node runs no SIP gateway")
        return self.gateway

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"


def node_id(settings: Settings) -> str:
    """This node's name in leases, leadership and presence: DIALER_NODE_ID, else host-pid."""
    return settings.node_id or f"{socket.gethostname()}-{os.getpid()}"


def build_node(settings: Settings, role: str = "all") -> Node:
    """Store (migrated), coordinator and the parts of ``role``, with its HTTP server, from Settings."""
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not settings.redis_url:
        settings = settings.model_copy(update={"redis_url": None})  # DIALER_REDIS_URL= means unset
    if role != "all" and settings.redis_url is None:
        raise RoleError(
            f"--role {role} needs DIALER_REDIS_URL: nodes of separate roles share leases, "
            "leadership and call commands through Redis"
        )
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.database_url)
    store.migrate()
    coordinator = make_coordinator(settings.redis_url, namespace=settings.redis_namespace)
    builders = {"all": _all, "gateway": _gateway, "scheduler": _scheduler, "api": _api}
    app, parts, gateway = builders[role](settings, store, coordinator)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_config=None, lifespan="on")
    )
    return Node(settings, store, coordinator, server, role, parts, gateway)


_Built = tuple["FastAPI", list[Part], "Runtime | None"]


def _runtime(settings: Settings, store: SqlStore, coordinator: Coordinator, *, schedule: bool) -> Runtime:
    from dialer.runtime import Runtime

    rules = load_rules(settings.regional_rules_file)
    log.info("loaded %d regional calling rules", len(rules))
    return Runtime(settings, store, coordinator, rules, node_id=node_id(settings), schedule=schedule)


def _all(settings: Settings, store: SqlStore, coordinator: Coordinator) -> _Built:
    """Everything in one process; with Redis it also serves other nodes' call commands, and its API
    reaches the calls of other nodes through them."""
    from api.app import create_app
    from api.runtime import ApiRuntime
    from dialer.commands import GatewayClient, GatewayServer
    from dialer.roles import RoutedRuntime

    runtime = _runtime(settings, store, coordinator, schedule=True)
    parts: list[Part] = [runtime]
    api_runtime: ApiRuntime = runtime
    if settings.redis_url is not None:
        client = GatewayClient(coordinator, timeout=settings.gateway_command_timeout_seconds)
        parts.append(GatewayServer(coordinator, runtime.node_id, runtime))
        api_runtime = RoutedRuntime(runtime, client)
    app = create_app(
        store,
        runtime=api_runtime,
        metrics=runtime.metrics,
        webhooks=runtime.webhooks,
        coordinator=coordinator if settings.redis_url else None,  # API replicas share rate limits
        recordings=runtime.recordings.storage,
        public_url=settings.public_url,
    )
    return app, parts, runtime


def _gateway(settings: Settings, store: SqlStore, coordinator: Coordinator) -> _Built:
    from api.app import create_app
    from dialer.commands import GatewayServer

    runtime = _runtime(settings, store, coordinator, schedule=False)
    server = GatewayServer(coordinator, runtime.node_id, runtime)
    app = create_app(store, runtime=runtime, metrics=runtime.metrics, public=False)
    return app, [runtime, server], runtime


def _scheduler(settings: Settings, store: SqlStore, coordinator: Coordinator) -> _Built:
    from api.app import create_app
    from dialer.metrics import Metrics
    from dialer.roles import SchedulerNode

    metrics = Metrics()
    node = SchedulerNode(settings, store, coordinator, node_id(settings), metrics)
    app = create_app(store, runtime=node, metrics=metrics, public=False)
    return app, [node], None


def _api(settings: Settings, store: SqlStore, coordinator: Coordinator) -> _Built:
    from api.app import create_app
    from dialer.metrics import Metrics
    from dialer.recordings import RecordingStorage
    from dialer.roles import ApiNode

    metrics = Metrics()
    node = ApiNode(settings, store, coordinator, metrics)
    app = create_app(
        store,
        runtime=node.gateways,
        metrics=metrics,
        webhooks=node.webhooks,
        coordinator=coordinator,
        recordings=RecordingStorage.from_settings(settings),  # S3 (shared), or this node's own disk
        public_url=settings.public_url,
    )
    return app, [node], None


async def run_node(node: Node, *, ready: asyncio.Event | None = None) -> int:
    """Start the node's parts and its HTTP server, serve until SIGINT/SIGTERM (or
    ``node.server.should_exit``), then stop the parts in reverse order (a gateway hangs up and records
    every call) and free everything; returns the process exit code.

    ``ready`` is set once every part is up (SIP workers included) and HTTP listens.
    """
    from sip.supervisor import GatewayError

    server = node.server
    # Ours handle a signal outside server.serve(); inside it uvicorn swaps in its own, then restores
    # ours and re-raises the signal it caught, which lands here again harmlessly.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    started: list[Part] = []
    try:
        for part in node.parts:
            started.append(part)  # one that fails half-way is stopped too
            try:
                await part.start()
            except GatewayError as exc:
                log.error("SIP gateway could not start: %s", exc)
                return 1
        serving = asyncio.create_task(server.serve(), name="http")
        for _ in range(600):  # uvicorn binds within milliseconds; 30 s means something is wrong
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        if server.started:
            log.info("HTTP on %s (role %s)", node.base_url, node.role)
            if ready is not None:
                ready.set()
        await serving
        return 0 if server.started else 1
    finally:
        for part in reversed(started):
            await part.stop()
        await node.coordinator.close()
        node.store.dispose()


async def serve(settings: Settings, role: str = "all", *, ready: asyncio.Event | None = None) -> int:
    """Run ``role`` until SIGINT/SIGTERM; returns the process exit code.

    ``ready`` is set once the node's parts are up and HTTP listens (tests wait on it).
    """
    try:
        node = build_node(settings, role)
    except RoleError as exc:
        log.error("%s", exc)
        return 2
    return await run_node(node, ready=ready)
