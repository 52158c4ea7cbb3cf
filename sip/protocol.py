"""Records crossing the pipe between the gateway and a SIP worker process, one JSON object per line.

The gateway writes commands to the worker's stdin; the worker writes events to the pipe that was its
stdout (it keeps a duplicate and points fd 1 at /dev/null, so pjsua console output cannot corrupt it).
Every line is ``{"t": <record name>, ...fields}``. Calls are named by integer keys: positive keys
are outbound calls numbered by the gateway, negative keys inbound calls numbered by the worker.
Times are Unix epoch seconds taken in the worker.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

# ---- set-up --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker process binds: SIP on ``host:port`` (UDP and TCP), RTP from ``rtp_port``."""

    name: str
    index: int
    host: str
    port: int
    rtp_port: int
    rtp_ports: int
    max_calls: int = 512  # asked of pjsua; its build may hold fewer, which the probe finds out
    media_sockets: int = 0  # PJ_IOQUEUE_MAX_HANDLES of the build's media ioqueue; 0: the build's own
    transfer_lines: int = 0  # call slots kept for bridged transfers' human legs (at most capacity - 1)
    tls: bool = False
    tls_port: int = 0  # 0: an ephemeral port, enough to call TLS trunks; listening needs a fixed one
    tls_cert: str = ""  # PEM files; a TLS listener needs them, a TLS client does not
    tls_key: str = ""
    log_level: str = "WARNING"
    # Refuse every inbound source (403) until the gateway's SetInboundPolicy arrives, right after
    # Ready: set when the gateway restricts sources, so a worker (re)started during a flood makes no
    # call of it meanwhile. Unset, every INVITE is offered until a policy says otherwise.
    inbound_closed: bool = False
    clock_idle_seconds: float = 5.0  # the bridge's clock stops after this long with nothing going on


# ---- commands: gateway → worker ------------------------------------------------------------------


@dataclass(frozen=True)
class AddTrunk:
    """Create or update the pjsua2 account of a trunk (fields from ``TrunkConfig.account``)."""

    trunk: str
    id_uri: str
    registrar: str
    register_expires: int
    username: str
    password: str
    proxy: str
    accept_refer: bool = False  # accept a REFER from the far end of this trunk's calls (else 603)
    codecs: tuple[str, ...] = ()  # codecs offered after G.711 (e.g. "G722"); shared by the worker


@dataclass(frozen=True)
class SetInboundPolicy:
    """Which inbound INVITEs the worker refuses by itself (sip/inbound_policy.py, sip/screen.py):
    ``networks`` the sources allowed (CIDRs; None: any), ``numbers`` the E.164 numbers answered
    (None: every number is offered to the gateway)."""

    networks: list[str] | None = None
    numbers: list[str] | None = None


@dataclass(frozen=True)
class Dial:
    """Place an outbound call; answered by ``Placed``, ``Full`` or ``Failed``."""

    key: int
    trunk: str
    uri: str
    from_uri: str
    headers: dict[str, str]
    timeout: float  # seconds from INVITE to answer before we CANCEL
    max_duration: float  # seconds from answer before we send BYE
    stream: dict[str, Any] | None = None  # a StreamSpec.wire(): bridge the answered call's audio
    amd: dict[str, Any] | None = None  # an AmdSpec.wire(): answering-machine detection from the answer


@dataclass(frozen=True)
class AmdSpec:
    """Answering-machine detection of one call (sip/amd_media.py), inside ``Dial`` as a plain dict.

    ``wait_for_end``: after ``machine_start``, wait for the greeting's end (beep or silence) before
    acting. ``asynchronous``: the voice worker's stream opens at the answer and gets verdicts as
    events; else it opens after the verdict, with ``answered_by`` in ``customParameters``.
    ``on_machine``: ``hangup``, ``leave_message`` (play ``message_path``, a local WAV, then hang up)
    or ``worker``.
    """

    wait_for_end: bool
    timeout: float
    asynchronous: bool
    on_machine: str
    message_path: str = ""

    def wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AmdSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


SIP_WORKER_SCHEMES = ("sip:", "sips:")


@dataclass(frozen=True)
class StreamSpec:
    """Where a call's audio goes once answered: a voice worker's WebSocket, and its ``start`` metadata.

    Travels inside ``Dial``/``Answer`` as a plain dict (``wire``/``from_wire``).
    """

    url: str  # ws:// or wss://; or sip:/sips: (sip/sip_worker.py: a second SIP leg, no stream)
    account_sid: str  # the tenant id
    call_sid: str  # the attempt id (outbound) or inbound call id
    parameters: dict[str, str] = field(default_factory=dict)  # the start message's customParameters
    reconnects: int = 0  # attempts to re-open a dropped socket over the call (0: a drop hangs up)
    reconnect_backoff: float = 0.1  # seconds before the first re-opening attempt, doubled after each
    record: str = ""  # a WAV path: record the callee and the worker there (sip/recorder.py); "": not recorded

    @property
    def sip(self) -> bool:
        """The worker is a SIP URI: reached by a second call leg, which holds a second call slot."""
        return self.url.lower().startswith(SIP_WORKER_SCHEMES)

    def wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StreamSpec:
        return cls(
            str(data["url"]),
            str(data["account_sid"]),
            str(data["call_sid"]),
            dict(data["parameters"]),
            int(data.get("reconnects", 0)),
            float(data.get("reconnect_backoff", 0.1)),
            str(data.get("record", "")),
        )


@dataclass(frozen=True)
class Hangup:
    """End a call (CANCEL, BYE or a rejection, whichever its state calls for); ``reason`` (e.g. an
    API hang-up) is the call's end reason, and no later one (the voice worker closing its stream
    as the BYE goes out) replaces it."""

    key: int
    reason: str | None = None


@dataclass(frozen=True)
class PlayFile:
    """Play a 16-bit PCM mono WAV file into an answered call (looping unless ``once``)."""

    key: int
    path: str
    once: bool = False


@dataclass(frozen=True)
class RecordTo:
    """Record what an answered call receives to a WAV file, closed when the call ends."""

    key: int
    path: str


@dataclass(frozen=True)
class SendDtmf:
    """Send DTMF digits on an answered call (RFC 2833)."""

    key: int
    digits: str


@dataclass(frozen=True)
class Answer:
    """Answer an offered inbound call with 200."""

    key: int
    max_duration: float
    stream: dict[str, Any] | None = None  # a StreamSpec.wire(): bridge the answered call's audio


RETRY_AFTER = 30  # seconds a caller is told to wait (Retry-After) when we cannot take calls (503)


@dataclass(frozen=True)
class Reject:
    """Refuse an offered inbound call with a final response."""

    key: int
    code: int
    retry_after: int | None = None


@dataclass(frozen=True)
class Transfer:
    """Hand the far end of answered call ``key`` to a human (sip/transfers.py).

    ``mode`` ``refer``: REFER to ``refer_uri``; ``bridge``: dial ``bridge_uri`` through ``trunk`` as
    ``from_uri`` and join the two legs' audio; ``auto``: REFER, then the bridge when the REFER is
    refused or no final NOTIFY comes within ``refer_timeout``. Answered by ``TransferUpdate``s and
    one ``TransferDone``.
    """

    key: int
    mode: str
    trunk: str
    refer_uri: str
    bridge_uri: str
    from_uri: str
    headers: dict[str, str] = field(default_factory=dict)
    refer_timeout: float = 8.0  # seconds from REFER to a final NOTIFY
    ring_timeout: float = 30.0  # seconds from the human leg's INVITE to its answer


@dataclass(frozen=True)
class TransferRefused:
    """The transfer call ``key``'s voice worker asked for was refused before it started (bad number,
    call not up, trunk refuses the destination): the worker is told with ``transfer_failed``."""

    key: int
    reason: str


@dataclass(frozen=True)
class Stop:
    """Hang up everything, shut pjsua down cleanly and exit."""


# ---- events: worker → gateway --------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The worker is up and holds at most ``capacity`` calls at once (found by probing, less the
    ``transfer_lines`` it keeps for human legs)."""

    capacity: int
    pid: int


@dataclass(frozen=True)
class Placed:
    """The INVITE of call ``key`` left."""

    key: int
    at: float


@dataclass(frozen=True)
class Full:
    """Call ``key`` was not placed; nothing was sent.

    ``retry_in`` 0: every pjsua call slot is taken (PJ_ETOOMANY). Otherwise the media sockets of
    recent calls are not free yet and one will be in ``retry_in`` seconds (see CallTable.room).
    """

    key: int
    retry_in: float = 0.0


@dataclass(frozen=True)
class Failed:
    """Call ``key`` was not placed for another reason; nothing was sent."""

    key: int
    message: str


@dataclass(frozen=True)
class Offered:
    """An inbound INVITE arrived for ``called`` (the Request-URI or To user); a decision is due."""

    key: int
    called: str
    caller: str | None
    at: float


@dataclass(frozen=True)
class Ringing:
    """First 18x of an outbound call; ``pdd_ms`` is INVITE→18x."""

    key: int
    at: float
    pdd_ms: float


@dataclass(frozen=True)
class Answered:
    """The call reached CONFIRMED."""

    key: int
    at: float


@dataclass(frozen=True)
class Ended:
    """The call is over (DISCONNECTED): what pjsua reported, plus our own limits and RTP counts."""

    key: int
    at: float
    code: int
    reason: str
    cause: int | None
    confirmed: bool
    started_at: float  # INVITE sent (outbound) or received (inbound)
    ringing_at: float | None
    answered_at: float | None
    limit: str | None = None  # "timeout" or "max duration" when our own timer ended the call
    rtp: dict[str, int] = field(default_factory=dict)  # rx/tx packets of the audio stream
    transferred: bool = False  # the far end was handed to a human (REFER completed or legs bridged)
    answered_by: str | None = None  # the answering-machine detector's last verdict (sip/amd.py)
    amd_ms: int | None = None  # from the answer to its first verdict


@dataclass(frozen=True)
class Rejected:
    """pjsua refused an inbound INVITE by itself (every call slot taken) before offering it."""

    called: str | None
    caller: str | None
    code: int
    at: float


@dataclass(frozen=True)
class InboundRefused:
    """INVITEs the worker refused by its inbound policy since its last report, by reason
    ("source": 403, "unknown_number": 404); no call was made of them."""

    counts: dict[str, int]


@dataclass(frozen=True)
class Registration:
    """A trunk's REGISTER got a final answer (``expires`` 0 when unregistered or failed)."""

    trunk: str
    code: int
    expires: int


@dataclass(frozen=True)
class TrunkError:
    """A trunk's account could not be built (bad URI and the like)."""

    trunk: str
    message: str


@dataclass(frozen=True)
class TransferAsked:
    """The voice worker of call ``key`` asked for a transfer to ``to`` (mode refer, bridge or auto)."""

    key: int
    to: str
    mode: str
    at: float


@dataclass(frozen=True)
class HangupAsked:
    """The voice worker of call ``key`` asked to hang up; the worker process hangs up at once."""

    key: int
    reason: str | None
    at: float


@dataclass(frozen=True)
class TransferUpdate:
    """A step of call ``key``'s transfer: REFER progress from NOTIFY sipfrags (100 "Accepted" for the
    202, then 100, 180, the final code) or the human leg's progress (``method`` ``bridge``)."""

    key: int
    method: str
    code: int
    reason: str
    final: bool
    at: float


@dataclass(frozen=True)
class TransferDone:
    """Call ``key``'s transfer is settled: ``result`` ``completed`` (REFER 2xx: we hang up),
    ``bridged`` (the human answered and the legs are joined) or ``failed`` (the far end stays with
    its voice worker, which was told with a ``transfer_failed`` event)."""

    key: int
    method: str
    result: str
    code: int | None
    reason: str
    started_at: float
    at: float


@dataclass(frozen=True)
class StreamJoined:
    """Once per answered call streamed to a voice worker: when the worker got ``start`` on an open
    socket (``connected_at``), or None when the stream gave up on it or, ``ended``, the call ended
    first (abandonment)."""

    key: int
    answered_at: float  # where the abandonment clock starts: the answer, or the AMD verdict (amd_media.py)
    connected_at: float | None
    at: float
    ended: bool = False


@dataclass(frozen=True)
class ReferReceived:
    """The far end of call ``key`` sent a REFER; ``accepted`` per its trunk (else refused with 603)."""

    key: int
    accepted: bool
    at: float


@dataclass(frozen=True)
class OptOutAsked:
    """The voice worker of call ``key`` says the callee asked never to be called again (``opt_out``)."""

    key: int
    at: float


@dataclass(frozen=True)
class DtmfHeard:
    """The far end of call ``key`` pressed ``digit`` (RFC 2833): the dialer compares it with the
    campaign's opt-out digit. Never logged: digits can be personal data."""

    key: int
    digit: str
    at: float


@dataclass(frozen=True)
class Recorded:
    """A call's recording is complete (after its ``Ended``): the two-channel WAV at ``path``, or
    ``error`` and no path. Names the call by its ids, not its key (forgotten by then)."""

    call_sid: str  # the StreamSpec's: the attempt id (outbound) or inbound call id
    tenant: str
    path: str
    seconds: float
    started_at: float
    error: str = ""


Command = (
    AddTrunk
    | Dial
    | Hangup
    | Answer
    | Reject
    | Stop
    | PlayFile
    | RecordTo
    | SendDtmf
    | Transfer
    | TransferRefused
    | SetInboundPolicy
)
#: What an answered call's voice worker, transfer or far end reports: outbound and inbound calls alike.
CallBridgeEvent = (
    TransferAsked
    | HangupAsked
    | TransferUpdate
    | TransferDone
    | ReferReceived
    | StreamJoined
    | OptOutAsked
    | DtmfHeard
)
Event = (
    Ready
    | Placed
    | Full
    | Failed
    | Offered
    | Ringing
    | Answered
    | Ended
    | Rejected
    | InboundRefused
    | Registration
    | TrunkError
    | Recorded
    | CallBridgeEvent
)

_RECORDS: dict[str, type[Any]] = {cls.__name__: cls for cls in (*Command.__args__, *Event.__args__)}


def encode(record: Command | Event) -> bytes:
    """One line of the pipe."""
    return (json.dumps({"t": type(record).__name__, **asdict(record)}, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> Any:
    """The record a line holds; ValueError for anything that is not one."""
    data = json.loads(line)
    cls = _RECORDS.get(data.pop("t", None)) if isinstance(data, dict) else None
    if cls is None:
        raise ValueError("not a protocol record")
    names = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def utc(epoch: float) -> datetime:
    """A protocol time as an aware datetime."""
    return datetime.fromtimestamp(epoch, UTC)


def config_arg(config: WorkerConfig) -> str:
    """The worker's command-line argument."""
    return json.dumps(asdict(config))


def parse_config(arg: str) -> WorkerConfig:
    """Inverse of ``config_arg``."""
    return WorkerConfig(**json.loads(arg))
