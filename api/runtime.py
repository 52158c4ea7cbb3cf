"""What the running dialer offers the API: the port ``dialer serve`` implements, absent in API-only tests."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class CallRejected(Exception):
    """The gateway will not place or act on the call; ``reason`` is for people and never names a number."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayUnavailable(CallRejected):
    """No SIP gateway could be asked: none is alive, or none answered in time (the API answers 503)."""


class ApiRuntime(Protocol):
    """The live parts behind the API (dispatcher, SIP gateway); ``None`` where they do not run.

    In one process (``--role all``) it is the runtime itself; on an API-only node (``--role api``) it
    is ``dialer.commands.GatewayClient``, which carries each call action to a gateway node.
    """

    def campaigns_changed(self) -> None:
        """Wake the dispatcher after a start, resume or new prospects."""

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        """Dial a call row made by ``store.create_call``; CallRejected if it cannot be placed."""

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        """Transfer a live call to ``to_number`` (mode ``auto``, ``refer`` or ``bridge``); CallRejected."""

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        """Hang up a live call; CallRejected if the gateway does not hold it."""

    async def health(self) -> dict[str, dict[str, object]]:
        """Extra /health components, e.g. ``{"redis": {"healthy": True, "latency_ms": 0.4}}``.

        A component with ``"gates_readiness": False`` is reported but does not make /ready fail (an API
        replica still serves reads when no gateway is up; taking it out of the load balancer would
        turn clear errors into refused connections).
        """
