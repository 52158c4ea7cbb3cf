"""Prometheus metrics: every series the dialer exports, defined and updated here and nowhere else.

Phone numbers are personal data: no label ever holds one. Campaigns, trunks and DIDs are labelled by
their ids. Every outbound call passes through ``MeteredLauncher``, so campaign calls and single API
calls are counted alike; the dispatch loop reports window blocks and lag through ``DispatchObserver``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dialer.dispatch import end_outcome
from dialer.outcome import Outcome
from dialer.ports import (
    CallEnded,
    CallEvent,
    CallLauncher,
    CallRequest,
    CallRinging,
    DispatchObserver,
    ObservingLauncher,
)

NO_CAMPAIGN = "none"  # label value of calls placed one at a time through the API
# Outcomes where the network reached the callee's terminal: the numerator of NER.
_NETWORK_EFFECTIVE = {
    Outcome.ANSWERED,
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.REJECTED,
    Outcome.TRANSFERRED,
    Outcome.VOICEMAIL,
}
_PDD_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30)
# An answered call whose voice worker is not connected this long after the answer is abandoned (the
# callee heard dead air): Ofcom's 2 s, also the bound the bridge holds for an unreachable worker.
ABANDON_SECONDS = 2.0


def abandoned(answered_at: datetime, connected_at: datetime | None, ended_at: datetime | None = None) -> bool:
    """Whether an answered call was abandoned: its voice worker connected over 2 s after the answer, or
    never did and either the gateway hung up for want of it, or the callee waited more than 2 s and hung
    up (``ended_at``: the call ended then with no worker; a callee gone within 2 s was not let down)."""
    if connected_at is not None:
        return (connected_at - answered_at).total_seconds() > ABANDON_SECONDS
    return ended_at is None or (ended_at - answered_at).total_seconds() > ABANDON_SECONDS


_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)


class Metrics:
    """The dialer's series in one registry (a fresh one per process or test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "dialer_call_attempts",
            "Ended outbound calls by outcome",
            ["campaign", "trunk", "outcome"],
            registry=r,
        )
        self.seized = Counter(
            "dialer_calls_seized", "Outbound INVITEs sent (ASR/NER denominator)", ["trunk"], registry=r
        )
        self.answered = Counter(
            "dialer_calls_answered", "Outbound calls answered (ASR numerator)", ["trunk"], registry=r
        )
        self.network_effective = Counter(
            "dialer_calls_network_effective",
            "Outbound calls that reached the callee: answered, busy, no answer, rejected (NER numerator)",
            ["trunk"],
            registry=r,
        )
        self.active = Gauge("dialer_calls_active", "Calls up now", ["trunk", "direction"], registry=r)
        self.pdd = Histogram(
            "dialer_post_dial_delay_seconds",
            "INVITE to first 18x",
            ["trunk"],
            buckets=_PDD_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "dialer_call_duration_seconds",
            "Answer to end of answered calls",
            ["direction"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.inbound = Counter(
            "dialer_inbound_calls", "Ended inbound calls by outcome", ["outcome"], registry=r
        )
        self.inbound_refused_total = Counter(
            "dialer_sip_inbound_refused",
            "Inbound INVITEs the SIP workers refused before any call: source (403, not a trunk's address), "
            "unknown_number (404, no imported number)",
            ["reason"],
            registry=r,
        )
        self.window_blocked = Counter(
            "dialer_window_blocked", "Dials deferred by the calling window, by reason", ["reason"], registry=r
        )
        self.dispatch_lag = Histogram(
            "dialer_dispatch_lag_seconds",
            "Due time to dial time of placed attempts",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.leases_lost = Counter(
            "dialer_leases_lost", "Calls hung up because their cap lease was lost", registry=r
        )
        self.slots_in_use = Gauge("dialer_slots_in_use", "Leased call slots", ["kind", "id"], registry=r)
        self.slots_capacity = Gauge(
            "dialer_slots_capacity", "Concurrent-call cap", ["kind", "id"], registry=r
        )
        self.http_requests = Counter(
            "dialer_http_requests",
            "REST requests by route template",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "dialer_http_request_duration_seconds",
            "REST request handling time",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.transfers = Counter(
            "dialer_transfers",
            "Human transfers by method (refer, bridge, inbound_refer) and result (completed/bridged/failed)",
            ["method", "result"],
            registry=r,
        )
        self.transfer_seconds = Histogram(
            "dialer_transfer_duration_seconds",
            "Transfer start to the human reached (or the attempt given up)",
            ["method"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=r,
        )
        self.worker_calls = Counter(
            "dialer_worker_calls",
            "Answered calls handed to a voice worker (the abandonment-rate denominator)",
            ["campaign", "direction"],
            registry=r,
        )
        self.abandoned = Counter(
            "dialer_calls_abandoned",
            "Answered calls whose voice worker was not connected within 2 s of the answer, or never",
            ["campaign", "direction"],
            registry=r,
        )
        self.prospects = Gauge(
            "dialer_prospects", "Prospects by campaign and state", ["campaign", "state"], registry=r
        )
        self.scheduler_leading = Gauge(
            "dialer_scheduler_leading",
            "1 while this process's scheduler holds the leadership lease (scheduled starts run there)",
            registry=r,
        )
        self.amd_verdicts = Counter(
            "dialer_amd_verdicts",
            "Answered outbound calls by answering-machine verdict (human, machine_start, fax, ...)",
            ["campaign", "answered_by"],
            registry=r,
        )
        self.amd_seconds = Histogram(
            "dialer_amd_detection_seconds",
            "From the answer to the answering-machine detector's first verdict",
            ["answered_by"],
            buckets=(0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20, 30),
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "dialer_webhook_deliveries",
            "Webhook POSTs by result: delivered, retried, failed (gave up), dropped (queue full)",
            ["result"],
            registry=r,
        )

    def watch_scheduler(self, leading: Callable[[], bool]) -> None:
        """Read the scheduler's leadership at scrape time (one process leads across the deployment)."""
        self.scheduler_leading.set_function(lambda: float(leading()))

    # ---- outbound calls (through MeteredLauncher) ------------------------------------------------

    def call_placed(self, trunk: str) -> None:
        self.seized.labels(trunk).inc()
        self.active.labels(trunk, "outbound").inc()

    def call_ringing(self, trunk: str, pdd_seconds: float | None) -> None:
        if pdd_seconds is not None:
            self.pdd.labels(trunk).observe(pdd_seconds)

    def call_ended(self, campaign: str, trunk: str, outcome: Outcome, talk_seconds: float | None) -> None:
        self.active.labels(trunk, "outbound").dec()
        self.attempts.labels(campaign, trunk, outcome.value).inc()
        if outcome in (Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.VOICEMAIL):  # the network answered
            self.answered.labels(trunk).inc()
        if outcome in _NETWORK_EFFECTIVE:
            self.network_effective.labels(trunk).inc()
        if talk_seconds is not None:
            self.duration.labels("outbound").observe(talk_seconds)

    def amd_verdict(self, campaign: str, answered_by: str, seconds: float | None) -> None:
        """An answered call's answering-machine verdict and how long after the answer it came."""
        self.amd_verdicts.labels(campaign, answered_by).inc()
        if seconds is not None:
            self.amd_seconds.labels(answered_by).observe(seconds)

    # ---- inbound calls ---------------------------------------------------------------------------

    def inbound_started(self, trunk: str) -> None:
        self.active.labels(trunk, "inbound").inc()

    def inbound_refused(self, reason: str, count: int = 1) -> None:
        """INVITEs refused by the inbound policy; ``reason`` "source" or "unknown_number", never a number."""
        self.inbound_refused_total.labels(reason).inc(count)

    def inbound_ended(self, trunk: str, outcome: Outcome, talk_seconds: float | None) -> None:
        self.active.labels(trunk, "inbound").dec()
        self.inbound.labels(outcome.value).inc()
        if talk_seconds is not None:
            self.duration.labels("inbound").observe(talk_seconds)

    # ---- voice workers -----------------------------------------------------------------------------

    def worker_joined(
        self,
        campaign: str,
        direction: str,
        answered_at: datetime,
        connected_at: datetime | None,
        ended_at: datetime | None = None,
    ) -> None:
        """Once per answered call streamed to a voice worker (arguments: see ``abandoned``)."""
        self.worker_calls.labels(campaign, direction).inc()
        if abandoned(answered_at, connected_at, ended_at):
            self.abandoned.labels(campaign, direction).inc()

    # ---- REST API ---------------------------------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """``route`` is the template (``/calls/{call_id}``), never the raw path: paths can hold numbers."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    # ---- webhooks -----------------------------------------------------------------------------------

    def webhook_delivery(self, result: str) -> None:
        """``result``: delivered, retried, failed or dropped (never a URL: it may carry a token)."""
        self.webhook_deliveries.labels(result).inc()

    # ---- human transfers ----------------------------------------------------------------------------

    def transfer_settled(self, method: str, result: str, seconds: float) -> None:
        """``result`` completed, bridged or failed (the reason stays out of labels: it is free text)."""
        self.transfers.labels(method, result).inc()
        self.transfer_seconds.labels(method).observe(max(0.0, seconds))

    # ---- snapshots refreshed by the runtime --------------------------------------------------------

    def set_slots(self, kind: str, ident: UUID, in_use: int, capacity: int) -> None:
        self.slots_in_use.labels(kind, str(ident)).set(in_use)
        self.slots_capacity.labels(kind, str(ident)).set(capacity)

    def set_prospects(self, campaign: UUID, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.prospects.labels(str(campaign), state).set(count)


class MetricsObserver(DispatchObserver):
    """What the dispatch loop reports, turned into series."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def deferred(self, campaign_id: UUID, reason: str) -> None:
        self.metrics.window_blocked.labels(reason).inc()

    def placed(self, request: CallRequest, lag_seconds: float) -> None:
        self.metrics.dispatch_lag.observe(max(0.0, lag_seconds))

    def lease_lost(self, campaign_id: UUID) -> None:
        self.metrics.leases_lost.inc()


@dataclass
class _Placed:
    campaign: str
    trunk: str


class MeteredLauncher(ObservingLauncher[_Placed]):
    """A CallLauncher that counts what passes through it, then forwards to the real one."""

    def __init__(self, inner: CallLauncher, metrics: Metrics) -> None:
        super().__init__(inner)
        self.metrics = metrics

    def remember(self, request: CallRequest) -> _Placed:
        return _Placed(str(request.campaign_id or NO_CAMPAIGN), str(request.trunk_id))

    def placed(self, kept: _Placed) -> None:
        self.metrics.call_placed(kept.trunk)

    def observe(self, kept: _Placed, event: CallEvent) -> None:
        if isinstance(event, CallRinging):
            self.metrics.call_ringing(kept.trunk, event.pdd_ms / 1000 if event.pdd_ms is not None else None)
        elif isinstance(event, CallEnded):
            talk = _seconds(event.answered_at, event.at)
            self.metrics.call_ended(kept.campaign, kept.trunk, end_outcome(event), talk)
            if event.answered_by is not None:
                self.metrics.amd_verdict(kept.campaign, event.answered_by, event.amd_seconds)


def _seconds(start: datetime | None, end: datetime) -> float | None:
    return (end - start).total_seconds() if start is not None else None


class SipUsage(Protocol):
    """What ``SipGateway.usage`` returns (sip/launcher.py), as far as metrics read it."""

    @property
    def in_use(self) -> int: ...
    @property
    def cpu_seconds(self) -> float: ...
    @property
    def rss_bytes(self) -> int: ...


class SipWorkerCollector(Collector):
    """SIP worker processes up/down, total call capacity and, given ``usage``, the slots in use and the
    workers' CPU time and memory, read from the gateway at scrape time. CPU per call in PromQL:
    ``rate(dialer_sip_worker_cpu_seconds_total[5m]) / dialer_sip_calls_in_use``."""

    def __init__(
        self,
        workers: Callable[[], dict[str, int | None]],
        capacity: Callable[[], int],
        usage: Callable[[], SipUsage] | None = None,
    ) -> None:
        self._workers = workers
        self._capacity = capacity
        self._usage = usage

    def collect(self) -> Iterable[Metric]:
        workers = self._workers()
        states = GaugeMetricFamily("dialer_sip_workers", "SIP worker processes by state", labels=["state"])
        up = sum(1 for pid in workers.values() if pid is not None)
        states.add_metric(["up"], up)
        states.add_metric(["down"], len(workers) - up)
        yield states
        yield GaugeMetricFamily(
            "dialer_sip_capacity_calls",
            "Calls the running SIP workers can hold at once",
            value=self._capacity(),
        )
        if self._usage is None:
            return
        usage = self._usage()
        yield GaugeMetricFamily(
            "dialer_sip_calls_in_use",
            "pjsua call slots in use in the running SIP workers",
            value=usage.in_use,
        )
        yield CounterMetricFamily(
            "dialer_sip_worker_cpu_seconds",
            "User + system CPU time of the running SIP worker processes (resets when one restarts)",
            value=usage.cpu_seconds,
        )
        yield GaugeMetricFamily(
            "dialer_sip_worker_rss_bytes",
            "Resident memory of the running SIP worker processes",
            value=usage.rss_bytes,
        )
