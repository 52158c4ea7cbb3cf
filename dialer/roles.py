"""The parts of a ``scheduler`` and of an ``api`` node (``dialer serve --role …``), and the API runtime of
an ``all`` node sharing Redis; a gateway node is a ``dialer.runtime.Runtime`` without its scheduler plus
a ``dialer.commands.GatewayServer``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from api.runtime import CallRejected
from config.settings import Settings
from dialer.commands import GatewayClient, LocalGateway
from dialer.metrics import Metrics
from dialer.ports import Coordinator
from dialer.storage import SqlStore
from dialer.webhooks import build_webhooks
from scheduler.jobs import CampaignScheduler

log = logging.getLogger(__name__)


async def redis_health(coordinator: Coordinator) -> dict[str, object]:
    """The coordinator's round trip, as a /health component."""
    started = time.perf_counter()
    try:
        await coordinator.in_use("health")
        healthy = True
    except Exception:
        log.warning("health: the coordinator did not answer", exc_info=True)
        healthy = False
    return {"healthy": healthy, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


class SchedulerNode:
    """The ``scheduler`` role: the leader-elected scheduled-start job; wakes the gateways after a start.

    Several may run: the coordinator's leadership lease lets exactly one act, and a standby takes over
    within ``DIALER_SCHEDULER_LEAD_TTL_SECONDS`` of the leader's death. Its HTTP port serves /health
    (saying whether it leads), /ready and /metrics; the call actions of ``ApiRuntime`` are refused.
    """

    def __init__(
        self, settings: Settings, store: SqlStore, coordinator: Coordinator, node_id: str, metrics: Metrics
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self.metrics = metrics
        # campaign.started of scheduled starts
        self.webhooks = build_webhooks(store, metrics, allow_private=settings.webhook_allow_private)
        self.gateways = GatewayClient(coordinator, timeout=settings.gateway_command_timeout_seconds)
        self.scheduler = CampaignScheduler(
            store,
            coordinator,
            node_id,
            on_started=self._started,
            interval=settings.scheduler_interval_seconds,
            lead_ttl=settings.scheduler_lead_ttl_seconds,
        )
        metrics.watch_scheduler(lambda: self.scheduler.leading)
        self._announcing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.webhooks.start()
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()  # resigns: a standby leads at its next tick, not after the TTL
        await asyncio.gather(*self._announcing, return_exceptions=True)
        await self.gateways.stop()
        await self.webhooks.stop()

    def _started(self, campaign_id: UUID) -> None:
        self.gateways.campaigns_changed()
        task = asyncio.get_running_loop().create_task(self._announce(campaign_id))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _announce(self, campaign_id: UUID) -> None:
        record = await self.store.get_campaign(campaign_id)
        if record is not None:
            self.webhooks.campaign_changed(record.tenant_id, campaign_id, "start", "active")

    # ---- ApiRuntime: only /health is served on this node ------------------------------------------

    async def health(self) -> dict[str, dict[str, object]]:
        return {
            "scheduler": {"healthy": True, "latency_ms": 0.0, "leading": self.scheduler.leading},
            "redis": await redis_health(self.coordinator),
        }

    def campaigns_changed(self) -> None:
        self.gateways.campaigns_changed()

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        raise CallRejected("this node runs the scheduler only")

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        raise CallRejected("this node runs the scheduler only")

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        raise CallRejected("this node runs the scheduler only")


class ApiNode:
    """The ``api`` role: the REST API only. Its call actions travel to gateway nodes through the
    coordinator (``gateways``, the API's runtime); it sends the API's own webhooks (campaign paused…)."""

    def __init__(
        self, settings: Settings, store: SqlStore, coordinator: Coordinator, metrics: Metrics
    ) -> None:
        self.webhooks = build_webhooks(store, metrics, allow_private=settings.webhook_allow_private)
        self.gateways = GatewayClient(coordinator, timeout=settings.gateway_command_timeout_seconds)

    async def start(self) -> None:
        await self.webhooks.start()

    async def stop(self) -> None:
        await self.gateways.stop()
        await self.webhooks.stop()


class RoutedRuntime:
    """An ``all`` node sharing Redis with others: call actions on its own calls are done here, the
    others are asked of the gateway nodes (a hang-up may reach any replica's API)."""

    def __init__(self, local: LocalGateway, gateways: GatewayClient) -> None:
        self.local = local
        self.gateways = gateways

    def campaigns_changed(self) -> None:
        self.local.campaigns_changed()
        self.gateways.campaigns_changed()

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        await self.local.place_call(tenant_id, call_id)

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        if self.local.holds_call(call_id):
            await self.local.hangup_call(tenant_id, call_id)
        else:
            await self.gateways.hangup_call(tenant_id, call_id)

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        if self.local.holds_call(call_id):
            await self.local.transfer_call(tenant_id, call_id, to_number, mode)
        else:
            await self.gateways.transfer_call(tenant_id, call_id, to_number, mode)

    async def health(self) -> dict[str, dict[str, object]]:
        return await self.local.health()
