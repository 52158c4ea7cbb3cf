"""The running dialer: SIP gateway, dispatcher, single calls, inbound records and scheduler over one store.

``dialer serve`` builds one Runtime and hands it to the API (it implements ``api.runtime.ApiRuntime``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from config.settings import Settings
from dialer.allocation import campaign_resource, did_resource, trunk_resource
from dialer.dispatch import Dispatcher
from dialer.domain import AttemptResult
from dialer.metrics import MeteredLauncher, Metrics, MetricsObserver, SipWorkerCollector
from dialer.outcome import Outcome, classify
from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.ports import CallEvent, CallRequest, Coordinator
from dialer.regions import RuleBook
from dialer.single_calls import CallNotPlaced, SingleCalls
from dialer.storage import SqlStore, TrunkRecord
from dialer.webhooks import build_webhooks
from scheduler.jobs import CampaignScheduler
from sip.events import (
    BridgeEvent,
    InboundEnded,
    InboundEvent,
    InboundOffered,
    InboundRoute,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
)
from sip.launcher import SipGateway
from sip.supervisor import GatewayError
from sip.trunks import Transport, TrunkConfig

log = logging.getLogger(__name__)


def trunk_config(record: TrunkRecord) -> TrunkConfig:
    """What the SIP layer needs of a stored trunk."""
    spec = record.spec
    return TrunkConfig(
        id=record.id,
        host=spec.host,
        port=spec.port,
        transport=Transport(spec.transport),
        username=spec.username,
        password=spec.password,
        register=spec.register,
        outbound_proxy=spec.outbound_proxy,
        allowed_countries=frozenset(spec.allowed_countries),
        refer_uri_style=spec.refer_uri_style,
        accept_inbound_refer=spec.accept_inbound_refer,
    )


class Runtime:
    """Owns the long-running parts of one dialer process and starts/stops them in order."""

    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        coordinator: Coordinator,
        rules: RuleBook,
        *,
        node_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.coordinator = coordinator
        self.node_id = node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.metrics = metrics or Metrics()
        self._call_limits: dict[UUID, int] = {}  # tenant -> longest call, refreshed with the metrics
        self.gateway = SipGateway(
            self._trunk,
            self._inbound_route,
            self._on_inbound,
            host=settings.sip_host,
            port=settings.sip_port,
            workers=settings.sip_workers,
            rtp_port=settings.sip_rtp_port,
            rtp_ports_per_worker=settings.sip_rtp_ports_per_worker,
            max_call_seconds=settings.max_call_seconds,
            max_call_seconds_for=self._call_limit,
            worker_urls=self._worker_url,
        )
        self.gateway.on_bridge = self._on_bridge
        self.metrics.registry.register(SipWorkerCollector(self.gateway.workers, self.gateway.capacity))
        self.webhooks = build_webhooks(store, self.metrics)
        self.launcher = MeteredLauncher(self.webhooks.launcher(self.gateway), self.metrics)
        self.dispatcher = Dispatcher(
            store,
            coordinator,
            self.launcher,
            rules,
            node_id=self.node_id,
            lease_ttl=settings.lease_ttl_seconds,
            tick=settings.dispatch_tick_seconds,
            observer=self.webhooks.observer(MetricsObserver(self.metrics)),
        )
        self.single_calls = SingleCalls(
            store, coordinator, self.launcher, lease_ttl=settings.lease_ttl_seconds
        )
        self.scheduler = CampaignScheduler(
            store, coordinator, self.node_id, on_started=self._started_on_schedule
        )
        # The dispatcher took the launcher's event callback; single calls' events go to their owner.
        self._to_dispatcher = self.launcher.on_event
        self.launcher.on_event = self._route_event
        self._dispatching: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start SIP workers (learning their capacity), register trunks, then dispatch and schedule."""
        await self.webhooks.start()
        self._call_limits = await self.store.tenant_call_limits()
        await self.gateway.start()
        for record in await self.store.list_trunks():
            if record.spec.register:
                await self.gateway.add_trunk(trunk_config(record))
        self.single_calls.start()
        self._dispatching = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        self._refreshing = asyncio.create_task(self._refresh_metrics_forever(), name="metrics-refresh")
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop dialling, hang up every call and record how each ended, stop the workers."""
        await self.scheduler.stop()
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        self.dispatcher.stop()
        if self._dispatching is not None:
            await self._dispatching
        await self.gateway.stop()  # reports every live call ended...
        await self.dispatcher.settle_pending()  # ...and those reports are written before we return
        await asyncio.gather(*self._settling, return_exceptions=True)
        await self.single_calls.stop()
        await self.webhooks.stop()  # after the last call events, so their webhooks are written

    def _started_on_schedule(self, campaign_id: UUID) -> None:
        self.dispatcher.wake()
        task = asyncio.get_running_loop().create_task(self._announce_start(campaign_id))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _announce_start(self, campaign_id: UUID) -> None:
        record = await self.store.get_campaign(campaign_id)
        if record is not None:
            self.webhooks.campaign_changed(record.tenant_id, campaign_id, "start", "active")

    # ---- what the API asks (api.runtime.ApiRuntime) ------------------------------------------------

    def campaigns_changed(self) -> None:
        self.dispatcher.wake()

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        from api.runtime import CallRejected

        try:
            await self.single_calls.place(call_id)
        except CallNotPlaced as exc:
            raise CallRejected(exc.reason) from None

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        await self.gateway.hangup(call_id)

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        """Start a human transfer of the tenant's live call; the attempt row records how it went."""
        from api.runtime import CallRejected

        attempt = await self.store.get_attempt(call_id)
        if attempt is None or attempt.tenant_id != tenant_id:
            raise CallRejected("no such call")
        try:
            target = parse_phone(to_number, await self.store.tenant_region(tenant_id))
        except InvalidPhoneNumber as exc:
            raise CallRejected(f"the transfer target is {exc.reason}") from None
        if mode == "auto" and attempt.trunk_id is not None:
            trunk = await self.store.get_trunk(attempt.trunk_id)
            if trunk is not None and not trunk.spec.refer_supported:
                mode = "bridge"  # the trunk is known to refuse REFER: no need to wait for its answer
        if call_id not in self.gateway.live_attempts() and attempt.direction != "inbound":
            raise CallRejected("the call is not up on this gateway")
        # Recorded before the gateway starts: its outcome may come back before this method returns.
        await self.store.record_transfer(call_id, target, mode, "pending")
        try:
            await self.gateway.transfer(call_id, target, mode)
        except GatewayError as exc:
            await self.store.record_transfer(call_id, target, mode, f"failed ({exc})")
            raise CallRejected(str(exc)) from None

    async def health(self) -> dict[str, dict[str, object]]:
        workers = self.gateway.workers()
        components: dict[str, dict[str, object]] = {
            "sip_workers": {
                "healthy": bool(workers) and all(pid is not None for pid in workers.values()),
                "latency_ms": 0.0,
                "workers": len(workers),
                "up": sum(1 for pid in workers.values() if pid is not None),
                "capacity": self.gateway.capacity(),
                "active_calls": len(self.gateway.live_attempts()),
            }
        }
        if self.settings.redis_url is not None:
            started = time.perf_counter()
            try:
                await self.coordinator.in_use("health")
                healthy = True
            except Exception:
                healthy = False
            components["redis"] = {
                "healthy": healthy,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        return components

    # ---- gateway callbacks -------------------------------------------------------------------------

    def _route_event(self, event: CallEvent) -> None:
        if self.single_calls.owns(event.attempt_id):
            task = asyncio.get_running_loop().create_task(self.single_calls.handle(event))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
        else:
            self._to_dispatcher(event)

    async def _trunk(self, trunk_id: UUID) -> TrunkConfig | None:
        record = await self.store.get_trunk(trunk_id)
        return trunk_config(record) if record is not None else None

    async def _worker_url(self, agent_id: UUID) -> str | None:
        """The agent's WebSocket worker; None (the call stays up unbridged) for a SIP-URI worker,
        which this gateway cannot reach yet."""
        url = await self.store.agent_worker_url(agent_id)
        if url is None or not url.startswith(("ws://", "wss://")):
            return None
        return url

    def _on_bridge(self, event: BridgeEvent) -> None:
        """What a voice worker asked, and how transfers went: a hang-up is carried out by the SIP
        worker itself; a transfer request starts a transfer; a settled transfer is recorded."""
        if isinstance(event, TransferRequested):
            self._spawn(self._transfer_for_worker(event))
        elif isinstance(event, TransferCompleted):
            self._spawn(self.store.record_transfer(event.call_id, None, event.method, event.result))
            took = (event.at - event.started_at).total_seconds()
            self.metrics.transfer_settled(event.method, event.result, took)
            log.info("call %s transferred by %s in %.2f s", event.call_id, event.method, took)
        elif isinstance(event, TransferFailed):
            result = f"failed ({event.reason})"
            self.metrics.transfer_settled(
                event.method, "failed", (event.at - event.started_at).total_seconds()
            )
            self._spawn(self.store.record_transfer(event.call_id, None, event.method, result))
            log.info("call %s: %s transfer failed: %s", event.call_id, event.method, event.reason)

    async def _transfer_for_worker(self, event: TransferRequested) -> None:
        from api.runtime import CallRejected

        attempt = await self.store.get_attempt(event.call_id)
        if attempt is None:
            return
        try:
            await self.transfer_call(attempt.tenant_id, event.call_id, event.to, event.mode)
        except CallRejected as exc:
            log.warning("call %s: the voice worker's transfer was refused: %s", event.call_id, exc.reason)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("transfer handling failed")

        task = asyncio.get_running_loop().create_task(run())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _inbound_route(self, number: str) -> InboundRoute | None:
        route = await self.store.inbound_route(number)
        if route is None:
            return None
        return InboundRoute(route.agent_id, route.tenant_id, route.number_id, route.trunk_id)

    async def _on_inbound(self, event: InboundEvent) -> None:
        """Record inbound calls: a row when offered, its end when it ends (refused calls: none)."""
        if isinstance(event, InboundOffered):
            self.metrics.inbound_started(str(event.route.trunk_id))
            self.webhooks.inbound_offered(
                event.route.tenant_id, event.call_id, event.route.agent_id, event.caller or "", event.called
            )
            await self.store.create_call(
                event.route.tenant_id,
                from_number=event.caller or "",
                to_number=event.called,
                direction="inbound",
                from_did_id=event.route.number_id,
                agent_id=event.route.agent_id,
                created_at=event.at,
                call_id=event.call_id,
            )
        elif isinstance(event, InboundEnded) and event.route is not None:
            outcome = Outcome.UNKNOWN if event.sip_code is None else classify(event.sip_code, event.confirmed)
            if event.transferred:
                outcome = Outcome.TRANSFERRED
            result = AttemptResult(
                outcome=outcome,
                ended_at=event.at,
                sip_code=event.sip_code,
                reason=event.reason,
                q850_cause=event.q850_cause,
                invited_at=event.offered_at,
                answered_at=event.answered_at,
                sip_worker=event.worker,
            )
            talk = (event.at - event.answered_at).total_seconds() if event.answered_at else None
            self.metrics.inbound_ended(str(event.route.trunk_id), outcome, talk)
            await self.store.finish_attempt(event.call_id, result, None)
            self.webhooks.inbound_ended(
                event.route.tenant_id,
                event.call_id,
                outcome,
                sip_code=event.sip_code,
                reason=event.reason,
                offered_at=event.offered_at,
                answered_at=event.answered_at,
                ended_at=event.at,
            )

    # ---- metrics snapshots -------------------------------------------------------------------------

    def _call_limit(self, request: CallRequest) -> float | None:
        """The tenant's own maximum call duration, capped by the node-wide DIALER_MAX_CALL_SECONDS."""
        limit = self._call_limits.get(request.tenant_id)
        return min(float(limit), self.settings.max_call_seconds) if limit else None

    async def refresh_metrics(self) -> None:
        """Slots in use vs cap for every DID, trunk and campaign being dialled; prospects by state.

        Also re-reads the tenants' call-duration limits (a new tenant gets its own within one pass).
        """
        self._call_limits = await self.store.tenant_call_limits()
        seen: set[str] = set()
        for campaign_id in await self.store.active_campaign_ids():
            plan = await self.store.campaign_plan(campaign_id)
            if plan is None:
                continue
            slots = [("campaign", plan.id, campaign_resource(plan.id), plan.max_concurrent_calls)]
            slots += [("did", d.id, did_resource(d.id), d.max_concurrent_calls) for d in plan.dids]
            slots += [("trunk", t.id, trunk_resource(t.id), t.max_concurrent_calls) for t in plan.trunks]
            for kind, ident, resource, cap in slots:
                if resource not in seen:
                    seen.add(resource)
                    self.metrics.set_slots(kind, ident, await self.coordinator.in_use(resource), cap)
            self.metrics.set_prospects(plan.id, await self.store.campaign_counts(plan.id))

    async def _refresh_metrics_forever(self, every: float = 5.0) -> None:
        while True:
            try:
                await self.refresh_metrics()
            except Exception:
                log.exception("metrics refresh failed")
            await asyncio.sleep(every)
