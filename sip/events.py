"""What the gateway reports besides the dialer's call events: inbound calls and RTP counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class InboundRoute:
    """Where a call to an imported number goes: the agent linked to the number, in its tenant."""

    agent_id: UUID
    tenant_id: UUID
    number_id: UUID
    trunk_id: UUID | None = None  # the trunk that owns the number (for metrics)


@dataclass(frozen=True)
class MediaStats:
    """RTP packet counts of a call's audio stream, read when the stream closed."""

    rx_packets: int
    tx_packets: int
    rx_lost: int = 0

    @classmethod
    def from_wire(cls, rtp: dict[str, int]) -> MediaStats | None:
        """From a worker's ``Ended.rtp`` (empty when the call never had a stream)."""
        return cls(rtp["rx"], rtp["tx"], rtp.get("rx_lost", 0)) if rtp else None


@dataclass(frozen=True)
class InboundOffered:
    """An INVITE for an imported number was routed to its agent and is being answered."""

    call_id: UUID
    called: str
    caller: str | None
    route: InboundRoute
    at: datetime
    worker: str


@dataclass(frozen=True)
class InboundAnswered:
    """An inbound call reached CONFIRMED."""

    call_id: UUID
    at: datetime


@dataclass(frozen=True)
class InboundEnded:
    """An inbound call is over, including calls refused before answer (404 unknown number, 486 full).

    ``route`` is None for refused calls; ``sip_code`` is our final response for those, else what
    pjsua reported at DISCONNECTED (200 for an answered call), None when its worker died.
    """

    call_id: UUID
    called: str | None
    caller: str | None
    route: InboundRoute | None
    at: datetime
    sip_code: int | None
    reason: str | None
    confirmed: bool
    q850_cause: int | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    worker: str | None = None
    media: MediaStats | None = None
    transferred: bool = False  # the caller was handed to a human (REFER completed or legs bridged)


InboundEvent = InboundOffered | InboundAnswered | InboundEnded


@dataclass(frozen=True)
class TransferRequested:
    """A call's voice worker asked for a human transfer to ``to`` (``mode`` refer, bridge or auto).

    ``call_id`` is the attempt id of an outbound call, the inbound call id otherwise.
    """

    call_id: UUID
    to: str
    mode: str
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class HangupRequested:
    """A call's voice worker asked to hang up; its SIP worker hangs up at once (end reason says so)."""

    call_id: UUID
    reason: str | None
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class TransferProgress:
    """A step of a call's human transfer: REFER progress (100 accepted, 100, 180, final code from the
    NOTIFY sipfrag; 408 when no final NOTIFY came in time) or the human leg's (``method`` bridge)."""

    call_id: UUID
    method: str
    sip_code: int
    reason: str
    final: bool
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class TransferCompleted:
    """The far end is with the human: ``result`` ``completed`` (REFER 2xx, we hang up) or ``bridged``.

    ``method`` ``inbound_refer``: the far end's own REFER was accepted and its new leg answered.
    """

    call_id: UUID
    method: str
    result: str
    sip_code: int | None
    started_at: datetime
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class TransferFailed:
    """No transfer happened; the call stays with its voice worker, which got ``transfer_failed``."""

    call_id: UUID
    method: str
    sip_code: int | None
    reason: str
    started_at: datetime
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class ReferFromFarEnd:
    """The far end of a call sent a REFER; ``accepted`` per its trunk (else refused with 603)."""

    call_id: UUID
    accepted: bool
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class WorkerConnected:
    """The call's voice worker has it: ``start`` went out on an open socket at ``at``.

    Once per answered call that streams to a worker; with ``answered_at`` it tells whether the call
    was abandoned (no worker within 2 s of the answer, see dialer.metrics.abandoned).
    """

    call_id: UUID
    answered_at: datetime
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class WorkerMissing:
    """An answered call's voice worker never connected: the bridge gave up on it at ``at`` (and hangs
    up), or, ``call_ended``, the call ended at ``at`` before the worker came."""

    call_id: UUID
    answered_at: datetime
    at: datetime
    inbound: bool = False
    call_ended: bool = False


@dataclass(frozen=True)
class OptOutRequested:
    """The call's voice worker says the callee asked never to be called again (its ``opt_out`` event);
    the call goes on."""

    call_id: UUID
    at: datetime
    inbound: bool = False


@dataclass(frozen=True)
class DigitPressed:
    """The far end of the call pressed ``digit`` (RFC 2833 DTMF); never logged (personal data)."""

    call_id: UUID
    digit: str
    at: datetime
    inbound: bool = False


BridgeEvent = (
    TransferRequested
    | HangupRequested
    | TransferProgress
    | TransferCompleted
    | TransferFailed
    | ReferFromFarEnd
    | WorkerConnected
    | WorkerMissing
    | OptOutRequested
    | DigitPressed
)


@dataclass(frozen=True)
class RecordingMade:
    """A recorded call's two-channel WAV is complete at ``path`` on this node (after the call's end);
    ``error`` set and ``path`` empty when it could not be written."""

    call_id: UUID
    tenant_id: UUID
    path: str
    seconds: float
    started_at: datetime | None
    error: str = ""
