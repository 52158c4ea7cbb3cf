"""Webhook events out of the dialer: what happened to calls and campaigns, told to tenants' endpoints.

``WebhookEmitter`` is the one entry point. It wraps the call launcher (like ``MeteredLauncher``) to see
every outbound call event, wraps the dispatch observer to hear ``campaign_completed``, and is called by
the API on start, pause and resume. Every method only queues (``WebhookSender.emit``): nothing here
waits on a database or a receiver, so dialling never slows down for a webhook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dialer import transfers
from dialer.dispatch import end_outcome
from dialer.metrics import Metrics
from dialer.outcome import Outcome
from dialer.ports import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallLauncher,
    CallRequest,
    CallRinging,
    DispatchObserver,
    ObservingLauncher,
)
from dialer.storage.webhooks import WebhookAdmin
from dialer.webhook_delivery import DEFAULT_RETRY_DELAYS, WebhookEvent, WebhookSender
from dialer.webhook_targets import WebhookTargets

CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_COMPLETED = "call.completed"
CALL_TRANSFERRED = "call.transferred"
CALL_RECORDING_READY = "call.recording_ready"
CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_PAUSED = "campaign.paused"
CAMPAIGN_RESUMED = "campaign.resumed"
CAMPAIGN_COMPLETED = "campaign.completed"
PROSPECT_OPTED_OUT = "prospect.opted_out"
EVENT_TYPES = (
    CALL_RINGING,
    CALL_ANSWERED,
    CALL_COMPLETED,
    CALL_TRANSFERRED,
    CALL_RECORDING_READY,
    CAMPAIGN_STARTED,
    CAMPAIGN_PAUSED,
    CAMPAIGN_RESUMED,
    CAMPAIGN_COMPLETED,
    PROSPECT_OPTED_OUT,
)
_CAMPAIGN_VERBS = {"start": CAMPAIGN_STARTED, "pause": CAMPAIGN_PAUSED, "resume": CAMPAIGN_RESUMED}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start is not None and end is not None else None


#: Settled transfers of inbound calls kept for their end's webhooks (far more than live calls).
MAX_HELD_TRANSFERS = 10_000


class WebhookEmitter:
    """Turns dialer happenings into webhook events; owns the sender that delivers them."""

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender
        self._launchers: list[WebhookLauncher] = []
        self._inbound_transfers: dict[UUID, dict[str, Any]] = {}  # settled, sent when the call ends
        self._transfer_logs: dict[UUID, list[dict[str, Any]]] = {}  # every transfer of a live call

    async def start(self) -> None:
        await self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()

    def emit(
        self,
        type: str,
        data: Mapping[str, Any],
        *,
        tenant_id: UUID | None = None,
        campaign_id: UUID | None = None,
    ) -> bool:
        """Queue one event (never blocks); False when it was dropped because the queue is full."""
        return self.sender.emit(WebhookEvent(type, dict(data), tenant_id, campaign_id))

    # ---- the three sources ---------------------------------------------------------------------

    def launcher(self, inner: CallLauncher) -> CallLauncher:
        """``inner`` wrapped so that its call events become ``call.*`` webhooks."""
        launcher = WebhookLauncher(inner, self)
        self._launchers.append(launcher)
        return launcher

    def observer(self, inner: DispatchObserver | None = None) -> DispatchObserver:
        """A dispatch observer that forwards to ``inner`` and emits ``campaign.completed``."""
        return WebhookObserver(self, inner or DispatchObserver())

    def transfer_settled(self, call_id: UUID, method: str, started_at: datetime, ended_at: datetime) -> None:
        """A transfer reached the human: its method and times go into the call's ``call.transferred``
        (and ``call.completed``) as ``transfer``, sent when the call ends."""
        details = {
            "method": method,
            "started_at": started_at.isoformat(),
            "ended_at": ended_at.isoformat(),
            "seconds": _seconds(started_at, ended_at),
        }
        if not any([launcher.transferred(call_id, details) for launcher in self._launchers]):
            self._inbound_transfers[call_id] = details  # not an outbound call: an inbound one
            if len(self._inbound_transfers) > MAX_HELD_TRANSFERS:  # calls that never reported an end
                del self._inbound_transfers[next(iter(self._inbound_transfers))]

    def transfer_started(self, call_id: UUID, to: str, method: str, at: datetime) -> None:
        """A transfer of a live call began: a pending entry of the call's ``transfers``."""
        self._keep_log(call_id, transfers.started(self._transfer_logs.get(call_id), to, method, at))

    def transfer_ended(
        self,
        call_id: UUID,
        *,
        method: str,
        result: str,
        sip_code: int | None,
        started_at: datetime | None,
        ended_at: datetime,
    ) -> None:
        """A transfer settled (reached the human or failed): its entry of the call's ``transfers``,
        which ``call.completed`` and ``call.transferred`` carry when the call ends."""
        log = transfers.settled(
            self._transfer_logs.get(call_id),
            to=None,
            method=method,
            result=result,
            sip_code=sip_code,
            started_at=started_at,
            ended_at=ended_at,
        )
        self._keep_log(call_id, log)

    def take_transfers(self, call_id: UUID) -> list[dict[str, Any]]:
        """The call's every transfer, in order, forgotten here: the call has ended."""
        return self._transfer_logs.pop(call_id, [])

    def _keep_log(self, call_id: UUID, log: list[dict[str, Any]]) -> None:
        self._transfer_logs[call_id] = log
        if len(self._transfer_logs) > MAX_HELD_TRANSFERS:  # calls that never reported an end
            del self._transfer_logs[next(iter(self._transfer_logs))]

    def campaign_changed(self, tenant_id: UUID, campaign_id: UUID, verb: str, status: str) -> None:
        """The API started, paused or resumed a campaign (``verb`` start, pause or resume)."""
        data = {"campaign_id": str(campaign_id), "status": status}
        self.emit(_CAMPAIGN_VERBS[verb], data, tenant_id=tenant_id)

    def prospect_opted_out(self, tenant_id: UUID, phone: str, call_id: UUID | None, stopped: int) -> None:
        """The callee asked not to be called again (voice-worker event or DTMF), after ``store.opt_out``."""
        data = {"phone": phone, "call_id": str(call_id) if call_id else None, "stopped_prospects": stopped}
        self.emit(PROSPECT_OPTED_OUT, data, tenant_id=tenant_id)

    # ---- inbound calls (the runtime's _on_inbound calls these) ---------------------------------

    def inbound_offered(
        self, tenant_id: UUID, call_id: UUID, agent_id: UUID | None, caller: str, called: str
    ) -> None:
        data = _call_data(call_id, None, None, agent_id, "inbound", caller, called)
        self.emit(CALL_RINGING, data, tenant_id=tenant_id)

    def inbound_ended(
        self,
        tenant_id: UUID,
        call_id: UUID,
        outcome: Outcome,
        *,
        sip_code: int | None,
        reason: str | None,
        offered_at: datetime | None,
        answered_at: datetime | None,
        ended_at: datetime,
    ) -> None:
        data = {
            "call_id": str(call_id),
            "direction": "inbound",
            **_end_data(outcome, sip_code, reason, offered_at, answered_at, ended_at),
        }
        transfer = self._inbound_transfers.pop(call_id, None)
        if transfer is not None:
            data["transfer"] = transfer
        data["transfers"] = self.take_transfers(call_id)
        if outcome is Outcome.TRANSFERRED:
            self.emit(CALL_TRANSFERRED, data, tenant_id=tenant_id)
        self.emit(CALL_COMPLETED, data, tenant_id=tenant_id)


def _call_data(
    call_id: UUID,
    campaign_id: UUID | None,
    prospect_id: UUID | None,
    agent_id: UUID | None,
    direction: str,
    from_number: str,
    to_number: str,
) -> dict[str, Any]:
    # Numbers go to the tenant's own endpoint (its data, as in GET /calls), never into logs or labels.
    return {
        "call_id": str(call_id),
        "campaign_id": str(campaign_id) if campaign_id else None,
        "prospect_id": str(prospect_id) if prospect_id else None,
        "agent_id": str(agent_id) if agent_id else None,
        "direction": direction,
        "from_number": from_number,
        "to_number": to_number,
    }


def _end_data(
    outcome: Outcome,
    sip_code: int | None,
    reason: str | None,
    invited_at: datetime | None,
    answered_at: datetime | None,
    ended_at: datetime,
) -> dict[str, Any]:
    return {
        "outcome": outcome.value,
        "sip_code": sip_code,
        "reason": reason,
        "answered_at": answered_at.isoformat() if answered_at else None,
        "ended_at": ended_at.isoformat(),
        "ring_seconds": _seconds(invited_at, answered_at or ended_at),
        "talk_seconds": _seconds(answered_at, ended_at) or 0.0,
        "total_seconds": _seconds(invited_at, ended_at),
    }


@dataclass(frozen=True)
class _Call:
    tenant_id: UUID
    data: dict[str, Any]


class WebhookLauncher(ObservingLauncher[_Call]):
    """A CallLauncher that emits ``call.*`` events for what passes through it, then forwards them."""

    def __init__(self, inner: CallLauncher, emitter: WebhookEmitter) -> None:
        super().__init__(inner)
        self.emitter = emitter

    def remember(self, request: CallRequest) -> _Call:
        data = _call_data(
            request.attempt_id,
            request.campaign_id,
            request.prospect_id,
            request.agent_id,
            "outbound",
            request.from_number,
            request.to_number,
        )
        return _Call(request.tenant_id, data)

    def observe(self, kept: _Call, event: CallEvent) -> None:
        self._emit(kept, event)

    def transferred(self, call_id: UUID, details: dict[str, Any]) -> bool:
        """Keep a live call's settled transfer for the events of its end; False: not a call of ours."""
        kept = self._calls.get(call_id)
        if kept is not None:
            kept.data["transfer"] = details
        return kept is not None

    def _emit(self, call: _Call, event: CallEvent) -> None:
        emit = self.emitter.emit
        if isinstance(event, CallRinging):
            emit(CALL_RINGING, call.data | {"pdd_ms": event.pdd_ms}, tenant_id=call.tenant_id)
        elif isinstance(event, CallAnswered):
            emit(CALL_ANSWERED, call.data | {"answered_at": event.at.isoformat()}, tenant_id=call.tenant_id)
        elif isinstance(event, CallEnded):
            outcome = end_outcome(event)
            ended = _end_data(
                outcome, event.sip_code, event.reason, event.invited_at, event.answered_at, event.at
            )
            ended["transfers"] = self.emitter.take_transfers(event.attempt_id)
            if event.answered_by is not None:
                ended["answered_by"] = event.answered_by
            if event.transferred:
                emit(CALL_TRANSFERRED, call.data | ended, tenant_id=call.tenant_id)
            emit(CALL_COMPLETED, call.data | ended, tenant_id=call.tenant_id)


class WebhookObserver(DispatchObserver):
    """Forwards every dispatch report to ``inner``; a completed campaign also becomes a webhook."""

    def __init__(self, emitter: WebhookEmitter, inner: DispatchObserver) -> None:
        self.emitter = emitter
        self.inner = inner

    def deferred(self, campaign_id: UUID, reason: str) -> None:
        self.inner.deferred(campaign_id, reason)

    def placed(self, request: CallRequest, lag_seconds: float) -> None:
        self.inner.placed(request, lag_seconds)

    def lease_lost(self, campaign_id: UUID) -> None:
        self.inner.lease_lost(campaign_id)

    def campaign_completed(self, campaign_id: UUID) -> None:
        self.inner.campaign_completed(campaign_id)
        data = {"campaign_id": str(campaign_id), "status": "completed"}
        self.emitter.emit(CAMPAIGN_COMPLETED, data, campaign_id=campaign_id)


def build_webhooks(
    store: WebhookAdmin,
    metrics: Metrics,
    *,
    queue_size: int = 10_000,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    timeout: float = 5.0,
    concurrency: int = 16,
    allow_private: bool = False,
) -> WebhookEmitter:
    """The emitter and its sender; ``await emitter.start()`` inside the running loop, ``stop()`` at exit.

    ``allow_private`` (``DIALER_WEBHOOK_ALLOW_PRIVATE``) lets endpoints be on loopback or private networks.
    """
    sender = WebhookSender(
        store,
        metrics,
        queue_size=queue_size,
        retry_delays=retry_delays,
        timeout=timeout,
        concurrency=concurrency,
        targets=WebhookTargets(allow_private=allow_private),
    )
    return WebhookEmitter(sender)
