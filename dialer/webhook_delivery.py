"""Webhook delivery: signed POSTs from durable rows, retried with backoff, never in the dialling path.

``WebhookSender.emit`` only puts the event on a bounded in-memory queue (a full queue drops it, with a
log line and the ``dropped`` metric; it never waits). One task turns each event into a delivery row per
subscribed endpoint; a second task POSTs due rows, at most ``concurrency`` at once, each with its own
``timeout``. A failed attempt (network error, non-2xx, or a URL the SSRF guard refuses now: see
dialer/webhook_targets.py) is retried after ``retry_delays[n]``; past the last delay the row is
``failed``. Rows are the truth: a new sender re-queues every pending row at start, and a claim on the
row keeps two senders from POSTing the same attempt at once. Delivery is at least once: receivers
dedupe by ``X-Webhook-Id`` (the event id, the same on every retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx

import dialer
from dialer.metrics import Metrics
from dialer.storage.webhooks import DELIVERED, FAILED, PENDING, DeliveryJob, WebhookAdmin
from dialer.webhook_targets import TargetRefused, WebhookTargets

log = logging.getLogger(__name__)

#: Five tries: at once, then after 1 s, 4 s, 16 s and 64 s.
DEFAULT_RETRY_DELAYS = (1.0, 4.0, 16.0, 64.0)
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between ``t`` and its own clock


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under the endpoint's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` value: ``t=<unix>,v1=<hex>``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = SIGNATURE_TOLERANCE
) -> bool:
    """What a receiver does: recompute the HMAC, compare in constant time, refuse stale timestamps."""
    parts = dict(item.partition("=")[::2] for item in header.split(","))
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), parts.get("v1", ""))


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WebhookEvent:
    """One event to tell a tenant about; ``tenant_id`` None means "the owner of ``campaign_id``"."""

    type: str
    data: Mapping[str, Any]
    tenant_id: UUID | None = None
    campaign_id: UUID | None = None
    id: UUID = field(default_factory=uuid4)
    created_at: datetime = field(default_factory=utc_now)


@dataclass(order=True)
class _Due:
    at: datetime
    seq: int
    job: DeliveryJob = field(compare=False)


class WebhookSender:
    """The asyncio worker behind ``emit``: queue → delivery rows → signed POSTs with retries."""

    def __init__(
        self,
        store: WebhookAdmin,
        metrics: Metrics | None = None,
        *,
        queue_size: int = 10_000,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = 5.0,
        concurrency: int = 16,
        clock: Callable[[], datetime] = utc_now,
        targets: WebhookTargets | None = None,
    ) -> None:
        self.store = store
        self.targets = targets or WebhookTargets()  # default: public addresses only
        self.metrics = metrics or Metrics()
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.clock = clock
        self._queue: asyncio.Queue[WebhookEvent] = asyncio.Queue(maxsize=queue_size)
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def max_attempts(self) -> int:
        return len(self.retry_delays) + 1

    # ---- the non-blocking side -----------------------------------------------------------------

    def emit(self, event: WebhookEvent) -> bool:
        """Queue ``event`` for delivery; False (and dropped, logged, counted) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("webhook queue full: dropped a %s event", event.type)
            self.metrics.webhook_delivery("dropped")
            return False
        return True

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Re-queue every pending delivery from the table, then start the fan-out and send tasks."""
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            headers={"User-Agent": f"sip-dialer/{dialer.__version__}"},
        )
        for job in await self.store.pending_deliveries():
            self._schedule(job, job.next_attempt_at)
        self._tasks = [
            asyncio.create_task(self._fan_out(), name="webhook-fan-out"),
            asyncio.create_task(self._run_due(), name="webhook-sender"),
        ]

    async def stop(self) -> None:
        """Stop sending; rows still pending are picked up by the next start (here or on another node)."""
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sending, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- workers -------------------------------------------------------------------------------

    async def _fan_out(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._store_event(event)
            except Exception:
                log.exception("webhook event %s (%s) could not be stored; dropped", event.id, event.type)
                self.metrics.webhook_delivery("dropped")

    async def _store_event(self, event: WebhookEvent) -> None:
        tenant_id = event.tenant_id
        if tenant_id is None and event.campaign_id is not None:
            tenant_id = await self.store.campaign_tenant(event.campaign_id)
        if tenant_id is None:
            return
        body = {
            "id": str(event.id),
            "type": event.type,
            "created_at": event.created_at.isoformat(),
            "tenant_id": str(tenant_id),
            "data": event.data,
        }
        payload = json.dumps(body, separators=(",", ":"), default=str)
        now = self.clock()
        for job in await self.store.enqueue_deliveries(tenant_id, event.id, event.type, payload, now):
            self._schedule(job, now)

    def _schedule(self, job: DeliveryJob, at: datetime) -> None:
        heapq.heappush(self._due, _Due(at, next(self._seq), job))
        self._wake.set()

    async def _run_due(self) -> None:
        while True:
            now = self.clock()
            while self._due and self._due[0].at <= now:
                job = heapq.heappop(self._due).job
                task = asyncio.create_task(self._send(job))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            wait = (self._due[0].at - now).total_seconds() if self._due else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _send(self, job: DeliveryJob) -> None:
        async with self._slots:
            attempt = await self.store.claim_delivery(job.id, self.clock(), hold=self.timeout + 30)
            if attempt is None:
                return  # delivered, given up, or another sender has it
            status, error = await self._post(job)
            now = self.clock()
            if status is not None and 200 <= status < 300:
                await self.store.finish_delivery(
                    job.id, status=DELIVERED, http_status=status, error=None, next_attempt_at=None, now=now
                )
                self.metrics.webhook_delivery("delivered")
                return
            if attempt >= self.max_attempts:
                log.warning("webhook delivery %s failed after %d attempts: %s", job.id, attempt, error)
                await self.store.finish_delivery(
                    job.id, status=FAILED, http_status=status, error=error, next_attempt_at=None, now=now
                )
                self.metrics.webhook_delivery("failed")
                return
            due = now + timedelta(seconds=self.retry_delays[attempt - 1])
            await self.store.finish_delivery(
                job.id, status=PENDING, http_status=status, error=error, next_attempt_at=due, now=now
            )
            self.metrics.webhook_delivery("retried")
            self._schedule(replace(job, next_attempt_at=due), due)

    async def _post(self, job: DeliveryJob) -> tuple[int | None, str | None]:
        """One POST: ``(http status or None, error text or None)``."""
        assert self._client is not None, "WebhookSender.start() was not awaited"
        body = job.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Id": str(job.event_id),
            "X-Signature": signature_header(job.secret, int(time.time()), body),
        }
        try:
            # Checked again now, and sent to the address checked: DNS may have changed since subscribing.
            target = await self.targets.check(job.url)
        except TargetRefused as exc:
            return None, f"{exc.code}: {exc.message}"[:500]
        headers["Host"] = target.host_header
        try:
            response = await self._client.post(
                target.pinned_url(), content=body, headers=headers, extensions={"sni_hostname": target.host}
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"
