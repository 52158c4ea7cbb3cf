"""The running dialer: SIP gateway, dispatcher, single calls, inbound records and scheduler over one store.

``dialer serve`` builds one Runtime and hands it to the API (it implements ``api.runtime.ApiRuntime``).
A ``--role gateway`` node builds it without the scheduler (``schedule=False``) and takes the API's
commands from the coordinator (``dialer.commands.GatewayServer``); ``--role all`` runs everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from config.settings import Settings
from dialer import transfers
from dialer.allocation import campaign_resource, did_resource, trunk_resource
from dialer.dispatch import Dispatcher
from dialer.domain import AttemptResult
from dialer.inbound_access import InboundAccess
from dialer.journal import CallJournal
from dialer.metrics import NO_CAMPAIGN, MeteredLauncher, Metrics, MetricsObserver, SipWorkerCollector
from dialer.opt_out import OptOuts
from dialer.outcome import Outcome, classify
from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.ports import CallEvent, CallRequest, Coordinator, DispatchObserver
from dialer.recordings import Recordings, RecordingStorage
from dialer.regions import RuleBook
from dialer.single_calls import CallNotPlaced, SingleCalls
from dialer.storage import AttemptRecord, SqlStore, TrunkRecord
from dialer.webhook_targets import WebhookTargets
from dialer.webhooks import build_webhooks
from scheduler.jobs import CampaignScheduler, RecordingRetention
from sip.amd_message import MessageCache
from sip.events import (
    BridgeEvent,
    DigitPressed,
    InboundAnswered,
    InboundEnded,
    InboundEvent,
    InboundOffered,
    InboundRoute,
    OptOutRequested,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
    WorkerConnected,
    WorkerMissing,
)
from sip.launcher import SipGateway
from sip.supervisor import GatewayError
from sip.trunks import Transport, TrunkConfig

log = logging.getLogger(__name__)

API_HANGUP = "hung up through the API"  # the end reason of a call ended by POST .../hangup (or Twilio's)

PENDING = transfers.PENDING  # a call's transfer_result while its transfer is under way
TRANSFER_UNDER_WAY = "a transfer of this call is already under way"


class Watchers(DispatchObserver):
    """The dispatcher's observer: the webhook and metrics observer first, then every watcher added by
    ``Runtime.add_observer``. Each method of the port is passed on, methods added to it later included;
    a watcher's error is logged, never raised into the dispatch loop."""

    def __init__(self, first: DispatchObserver) -> None:
        self.observers: list[DispatchObserver] = [first]
        for name in vars(DispatchObserver):
            if not name.startswith("_"):
                setattr(self, name, partial(self._fan, name))

    def _fan(self, name: str, *args: object) -> None:
        first, *watchers = self.observers
        getattr(first, name)(*args)
        for watcher in watchers:
            try:
                getattr(watcher, name)(*args)
            except Exception:
                log.exception("dispatch watcher %s failed", type(watcher).__name__)


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
        schedule: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.coordinator = coordinator
        self.node_id = node_id or settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
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
            transfer_lines=settings.sip_transfer_lines,
            max_call_seconds=settings.max_call_seconds,
            max_call_seconds_for=self._call_limit,
            worker_urls=self._worker_url,
            worker_reconnects=settings.worker_reconnect_attempts,
            worker_backoff=settings.worker_reconnect_backoff_seconds,
            recordings_dir=settings.recordings_path(),
            amd_messages=MessageCache(
                settings.journal_path().parent / "amd-messages",
                WebhookTargets(allow_private=settings.webhook_allow_private),
            ),
        )
        self.gateway.on_bridge = self._on_bridge
        self.gateway.on_refused = self.metrics.inbound_refused
        # Closed until the first read of trunks and numbers: a database that does not answer at start
        # must not open the SIP port to every source.
        self.gateway.set_inbound_policy([], [])
        self.inbound_access = InboundAccess(
            store,
            self.gateway.set_inbound_policy,
            settings.inbound_proxy_networks(),
            settings.sip_inbound_refresh_seconds,
        )
        collector = SipWorkerCollector(self.gateway.workers, self.gateway.capacity, self.gateway.usage)
        self.metrics.registry.register(collector)
        self.webhooks = build_webhooks(store, self.metrics, allow_private=settings.webhook_allow_private)
        self.opt_outs = OptOuts(store, self.webhooks)  # opt-outs said or keyed during calls
        storage = RecordingStorage.from_settings(settings)
        self.recordings = Recordings(store, storage, self.webhooks, settings.api_url())
        self.gateway.on_recording = self.recordings.made
        self.retention = RecordingRetention(
            self.recordings.purge, interval=settings.recordings_purge_interval_seconds
        )
        self.watchers = Watchers(self.webhooks.observer(MetricsObserver(self.metrics)))
        self._listeners: list[Callable[[CallEvent], None]] = []  # see add_observer
        self._last_usage: tuple[float, float] | None = (
            None  # (monotonic, worker CPU seconds) at the last /health
        )
        self.launcher = MeteredLauncher(self.webhooks.launcher(self.gateway), self.metrics)
        # Call-event writes (dispatcher, single calls, inbound) in one order, kept through an outage.
        self.journal = CallJournal(store, settings.journal_path())
        self.dispatcher = Dispatcher(
            store,
            coordinator,
            self.launcher,
            rules,
            node_id=self.node_id,
            lease_ttl=settings.lease_ttl_seconds,
            tick=settings.dispatch_tick_seconds,
            observer=self.watchers,
            max_call_seconds=settings.max_call_seconds,
            journal=self.journal,
        )
        self.single_calls = SingleCalls(
            store,
            coordinator,
            self.launcher,
            lease_ttl=settings.lease_ttl_seconds,
            max_call_seconds=settings.max_call_seconds,
            journal=self.journal,
        )
        # None on a gateway-only node: the scheduler role runs the scheduled starts there.
        self.scheduler = (
            CampaignScheduler(
                store,
                coordinator,
                self.node_id,
                on_started=self._started_on_schedule,
                interval=settings.scheduler_interval_seconds,
                lead_ttl=settings.scheduler_lead_ttl_seconds,
            )
            if schedule
            else None
        )
        if self.scheduler is not None:
            scheduler = self.scheduler
            self.metrics.watch_scheduler(lambda: scheduler.leading)
        # The dispatcher took the launcher's event callback; single calls' events go to their owner.
        self._to_dispatcher = self.launcher.on_event
        self.launcher.on_event = self._route_event
        self._dispatching: asyncio.Task[None] | None = None
        self._journaling: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._inbound_calls: set[UUID] = set()  # inbound calls up on this node's SIP workers
        self._inbound_order: dict[UUID, asyncio.Lock] = {}  # per inbound call, until it ends

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start SIP workers (learning their capacity), register trunks, then dispatch and schedule."""
        await self.webhooks.start()
        self._call_limits = await self.store.tenant_call_limits()
        await self.refresh_inbound()
        await self.gateway.start()
        self.inbound_access.start()
        for record in await self.store.list_trunks():
            if record.spec.register:
                await self.gateway.add_trunk(trunk_config(record))
        self.single_calls.start()
        self.journal.load()  # events an earlier run spooled during an outage: written first
        self._journaling = asyncio.create_task(self.journal.run(), name="call-journal")
        self._dispatching = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        self._refreshing = asyncio.create_task(self._refresh_metrics_forever(), name="metrics-refresh")
        if self.scheduler is not None:
            self.scheduler.start()
        self.retention.start()

    async def stop(self) -> None:
        """Stop dialling, hang up every call and record how each ended, stop the workers."""
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.retention.stop()
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        await self.inbound_access.stop()
        self.dispatcher.stop()
        if self._dispatching is not None:
            await self._dispatching
        await self.gateway.stop()  # reports every live call ended...
        await self.dispatcher.settle_pending()  # ...and those reports are written before we return
        await asyncio.gather(*self._settling, return_exceptions=True)
        await self._stop_journal()
        await self.single_calls.stop()
        await self.recordings.stop()  # recordings of the last calls kept, their webhooks queued
        await self.webhooks.stop()  # after the last call events, so their webhooks are written

    async def _stop_journal(self, within: float = 5.0) -> None:
        """Give waiting call events a last chance to be written; what is left stays in the spool file
        for the next start (memory-only entries are moved there first)."""
        if self._journaling is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.journal.drain(), within)
        self._journaling.cancel()
        await asyncio.gather(self._journaling, return_exceptions=True)
        self.journal.spill()

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

    async def refresh_inbound(self) -> None:
        """Re-read trunk sources and imported numbers for the SIP workers' inbound screen now (it is
        also re-read every ``DIALER_SIP_INBOUND_REFRESH_SECONDS``); a failure keeps the last policy."""
        try:
            await self.inbound_access.refresh()
        except Exception:
            log.exception("inbound policy refresh failed; the workers keep the last one")

    def campaigns_changed(self) -> None:
        self.dispatcher.wake()

    def add_observer(
        self, observer: DispatchObserver, on_event: Callable[[CallEvent], None] | None = None
    ) -> Callable[[], None]:
        """Let a watcher (the demo's live table, a test) hear what the dispatch loop decides and, with
        ``on_event``, every outbound call event before the dispatcher does; returns what detaches both.
        Both run on the event loop and must not block."""
        self.watchers.observers.append(observer)
        if on_event is not None:
            self._listeners.append(on_event)

        def detach() -> None:
            if observer in self.watchers.observers:
                self.watchers.observers.remove(observer)
            if on_event is not None and on_event in self._listeners:
                self._listeners.remove(on_event)

        return detach

    def holds_call(self, call_id: UUID) -> bool:
        """Whether this node's SIP workers have the call up (gateway commands ask before acting)."""
        return call_id in self.gateway.live_attempts() or call_id in self._inbound_calls

    def has_free_line(self) -> bool:
        """Whether this node could take one more outbound call now."""
        return len(self.gateway.live_attempts()) < self.gateway.capacity()

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        from api.runtime import CallRejected

        try:
            await self.single_calls.place(call_id)
        except CallNotPlaced as exc:
            raise CallRejected(exc.reason) from None

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        await self.gateway.hangup(call_id, API_HANGUP)

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        """Start a human transfer of the tenant's live call; the attempt row records how it went."""
        from api.runtime import CallRejected

        attempt = await self.store.get_attempt(call_id)
        if attempt is None or attempt.tenant_id != tenant_id:
            raise CallRejected("no such call")
        target, mode = await self._transfer_target(attempt, to_number, mode)
        await self._start_transfer(call_id, target, mode)

    async def _transfer_target(self, attempt: AttemptRecord, to_number: str, mode: str) -> tuple[str, str]:
        """The E.164 target and the mode to use; CallRejected (nothing recorded) when the transfer
        cannot start: a bad number, a call not up here, or another transfer under way."""
        from api.runtime import CallRejected

        try:
            target = parse_phone(to_number, await self.store.tenant_region(attempt.tenant_id))
        except InvalidPhoneNumber as exc:
            raise CallRejected(f"the transfer target is {exc.reason}") from None
        if mode == "auto" and attempt.trunk_id is not None:
            trunk = await self.store.get_trunk(attempt.trunk_id)
            if trunk is not None and not trunk.spec.refer_supported:
                mode = "bridge"  # the trunk is known to refuse REFER: no need to wait for its answer
        if attempt.id not in self.gateway.live_attempts() and attempt.direction != "inbound":
            raise CallRejected("the call is not up on this gateway")
        if attempt.transfer_result == PENDING:
            raise CallRejected(TRANSFER_UNDER_WAY)  # its record stays the running transfer's
        return target, mode

    async def _start_transfer(self, call_id: UUID, target: str, mode: str) -> None:
        """Record the transfer as pending and hand it to the gateway; if the gateway refuses (e.g. the
        trunk may not call the target), the record says so and CallRejected is raised."""
        from api.runtime import CallRejected

        # Recorded before the gateway starts: its outcome may come back before this method returns.
        asked = datetime.now(UTC)
        self.webhooks.transfer_started(call_id, target, mode, asked)
        await self.store.record_transfer(call_id, target, mode, PENDING, started_at=asked)
        try:
            await self.gateway.transfer(call_id, target, mode)
        except GatewayError as exc:
            now, result = datetime.now(UTC), f"failed ({exc})"
            self.webhooks.transfer_ended(
                call_id, method=mode, result=result, sip_code=None, started_at=asked, ended_at=now
            )
            await self.store.record_transfer(call_id, target, mode, result, started_at=asked, ended_at=now)
            raise CallRejected(str(exc)) from None

    def _sip_cost(self) -> dict[str, object]:
        """Slots in use and the SIP workers' cost per call since the previous /health (None the first
        time or with no call): how close this box is to its limit (docs/capacity.md)."""
        usage, now = self.gateway.usage(), time.monotonic()
        last, self._last_usage = self._last_usage, (now, usage.cpu_seconds)
        cpu = None
        if last is not None and now > last[0] and usage.cpu_seconds >= last[1]:
            cpu = 100 * (usage.cpu_seconds - last[1]) / (now - last[0])
        return {
            "calls_in_use": usage.in_use,
            "worker_cpu_percent": None if cpu is None else round(cpu, 2),
            "cpu_percent_per_call": round(cpu / usage.in_use, 3)
            if cpu is not None and usage.in_use
            else None,
            "rss_mb_per_call": round(usage.rss_bytes / 2**20 / usage.in_use, 2) if usage.in_use else None,
        }

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
                **self._sip_cost(),
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
        for listener in tuple(self._listeners):
            listener(event)
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
        """The agent's voice worker: a WebSocket URL (streamed) or a SIP URI (a second leg, bridged);
        None (the call stays up unbridged) for anything else."""
        url = await self.store.agent_worker_url(agent_id)
        if url is None or not url.lower().startswith(("ws://", "wss://", "sip:", "sips:")):
            return None
        return url

    def _on_bridge(self, event: BridgeEvent) -> None:
        """What a voice worker asked, and how transfers went: a hang-up is carried out by the SIP
        worker itself; a transfer request starts a transfer; a settled transfer is recorded; whether the
        worker took an answered call is recorded and counted (abandonment); an opt-out (the worker's
        event, or the campaign's opt-out digit pressed) puts the callee on the do-not-call list."""
        if isinstance(event, WorkerConnected | WorkerMissing):
            self._spawn(self._worker_joined(event))
        elif isinstance(event, OptOutRequested):  # the call goes on; every later attempt stops
            self._spawn(self.opt_outs.worker_asked(event.call_id))
        elif isinstance(event, DigitPressed):
            self._spawn(self.opt_outs.digit_pressed(event.call_id, event.digit))
        elif isinstance(event, TransferRequested):
            self._spawn(self._transfer_for_worker(event))
        elif isinstance(event, TransferCompleted):
            self._record_settled(event, event.result)
            self._log_settled(event, event.result)
            self.webhooks.transfer_settled(event.call_id, event.method, event.started_at, event.at)
            took = (event.at - event.started_at).total_seconds()
            self.metrics.transfer_settled(event.method, event.result, took)
            log.info("call %s transferred by %s in %.2f s", event.call_id, event.method, took)
        elif isinstance(event, TransferFailed):
            result = f"failed ({event.reason})"
            self.metrics.transfer_settled(
                event.method, "failed", (event.at - event.started_at).total_seconds()
            )
            self._record_settled(event, result)
            self._log_settled(event, result)
            log.info("call %s: %s transfer failed: %s", event.call_id, event.method, event.reason)

    async def _worker_joined(self, event: WorkerConnected | WorkerMissing) -> None:
        connected_at = event.at if isinstance(event, WorkerConnected) else None
        if connected_at is not None:
            await self.store.record_worker_connected(event.call_id, connected_at)
        attempt = await self.store.get_attempt(event.call_id)
        campaign = str(attempt.campaign_id) if attempt is not None and attempt.campaign_id else NO_CAMPAIGN
        direction = "inbound" if event.inbound else "outbound"
        ended_at = event.at if isinstance(event, WorkerMissing) and event.call_ended else None
        self.metrics.worker_joined(campaign, direction, event.answered_at, connected_at, ended_at)
        if connected_at is None:
            log.warning("call %s: its voice worker never connected", event.call_id)

    def _record_settled(self, event: TransferCompleted | TransferFailed, result: str) -> None:
        """Write how a transfer settled on the call's row, with when it started and ended."""
        at = {"started_at": event.started_at, "ended_at": event.at}
        record = self.store.record_transfer(
            event.call_id, None, event.method, result, sip_code=event.sip_code, **at
        )
        self._spawn(record)

    def _log_settled(self, event: TransferCompleted | TransferFailed, result: str) -> None:
        """The settled transfer in the ``transfers`` the call's end webhooks carry."""
        self.webhooks.transfer_ended(
            event.call_id,
            method=event.method,
            result=result,
            sip_code=event.sip_code,
            started_at=event.started_at,
            ended_at=event.at,
        )

    async def _transfer_for_worker(self, event: TransferRequested) -> None:
        """A voice worker asked for a transfer. If it cannot start, the worker is told (it would wait
        for a transfer that never comes) and the call records why, unless another transfer holds it."""
        from api.runtime import CallRejected

        attempt = await self.store.get_attempt(event.call_id)
        if attempt is None:
            return
        try:
            target, mode = await self._transfer_target(attempt, event.to, event.mode)
        except CallRejected as exc:
            self._refused_for_worker(event, exc.reason)
            if exc.reason != TRANSFER_UNDER_WAY:
                result, now = f"failed ({exc.reason})", datetime.now(UTC)
                self.webhooks.transfer_ended(
                    event.call_id,
                    method=event.mode,
                    result=result,
                    sip_code=None,
                    started_at=event.at,
                    ended_at=now,
                )
                await self.store.record_transfer(
                    event.call_id, None, event.mode, result, started_at=event.at, ended_at=now
                )
            return
        try:
            await self._start_transfer(event.call_id, target, mode)
        except CallRejected as exc:  # recorded by _start_transfer
            self._refused_for_worker(event, exc.reason)

    def _refused_for_worker(self, event: TransferRequested, reason: str) -> None:
        log.warning("call %s: the voice worker's transfer was refused: %s", event.call_id, reason)
        self.gateway.refuse_transfer(event.call_id, reason)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("voice-worker or transfer event handling failed")

        task = asyncio.get_running_loop().create_task(run())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _inbound_route(self, number: str) -> InboundRoute | None:
        route = await self.store.inbound_route(number)
        if route is None:
            return None
        return InboundRoute(route.agent_id, route.tenant_id, route.number_id, route.trunk_id)

    async def _on_inbound(self, event: InboundEvent) -> None:
        """Record inbound calls: a row when offered, its answer and its end (refused calls: none).

        Each event runs as its own task, started in the order the SIP worker reported them; a lock per
        call keeps their writes in that order (the answer never before the row exists)."""
        lock = self._inbound_order.setdefault(event.call_id, asyncio.Lock())
        async with lock:
            await self._record_inbound(event)
        if isinstance(event, InboundEnded) and not lock.locked():
            self._inbound_order.pop(event.call_id, None)

    async def _record_inbound(self, event: InboundEvent) -> None:
        if isinstance(event, InboundEnded):
            self._inbound_calls.discard(event.call_id)
        if isinstance(event, InboundOffered):
            self._inbound_calls.add(event.call_id)
            self.metrics.inbound_started(str(event.route.trunk_id))
            self.webhooks.inbound_offered(
                event.route.tenant_id, event.call_id, event.route.agent_id, event.caller or "", event.called
            )
            await self.journal.create_call(
                event.call_id,
                event.route.tenant_id,
                from_number=event.caller or "",
                to_number=event.called,
                direction="inbound",
                from_did_id=event.route.number_id,
                agent_id=event.route.agent_id,
                created_at=event.at,
            )
        elif isinstance(event, InboundAnswered):
            await self.journal.call_progress(event.call_id, answered_at=event.at)
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
            await self.journal.finish_attempt(event.call_id, result, None)
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
