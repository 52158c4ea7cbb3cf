"""SipGateway: the CallLauncher that places and answers calls through a pool of pjsua2 worker processes.

Each worker (sip/worker.py) is a child process started with ``python -m sip.worker`` that owns one
pjsua2 Endpoint on ``port + i`` with its own RTP range. Commands go to its stdin and events come
back on its stdout as JSON lines (sip/protocol.py); sip/supervisor.py starts, routes to and restarts
the workers. This module turns worker events into the dialer's CallRinging/CallAnswered/CallEnded and,
through sip/inbound.py, the inbound events of sip/events.py, always on the asyncio loop thread. A
worker that dies costs only its own calls: they are reported ended with no SIP result ("worker died").
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from dialer.ports import CallAnswered, CallEnded, CallLauncher, CallRequest, CallRinging, LaunchRefused
from sip.amd_message import MessageCache
from sip.bridge import WorkerResolver, inbound_stream, outbound_stream
from sip.events import (
    BridgeEvent,
    DigitPressed,
    HangupRequested,
    InboundRoute,
    MediaStats,
    OptOutRequested,
    RecordingMade,
    ReferFromFarEnd,
    TransferCompleted,
    TransferFailed,
    TransferProgress,
    TransferRequested,
    WorkerConnected,
    WorkerMissing,
)
from sip.inbound import InboundCallback, InboundDesk, InboundRouter
from sip.protocol import (
    AddTrunk,
    AmdSpec,
    Answered,
    CallBridgeEvent,
    Command,
    Dial,
    DtmfHeard,
    Ended,
    Event,
    Hangup,
    HangupAsked,
    InboundRefused,
    OptOutAsked,
    PlayFile,
    Recorded,
    RecordTo,
    ReferReceived,
    Registration,
    Ringing,
    SendDtmf,
    SetInboundPolicy,
    StreamJoined,
    StreamSpec,
    Transfer,
    TransferAsked,
    TransferRefused,
    TransferUpdate,
    TrunkError,
    WorkerConfig,
    utc,
)
from sip.stream import TRANSFER_MODES
from sip.supervisor import GatewayError, Supervisor, WorkerProcess
from sip.trunks import TrunkConfig, refusal

log = logging.getLogger(__name__)

TrunkLookup = Callable[[UUID], Awaitable[TrunkConfig | None]]
WORKER_DIED = "worker died"


def call_headers(caller_uri: str, request: CallRequest) -> dict[str, str]:
    """P-Asserted-Identity = the DID, plus the ids a trunk or voice worker can correlate on."""
    headers = {"P-Asserted-Identity": f"<{caller_uri}>", "X-Attempt-Id": str(request.attempt_id)}
    if request.campaign_id is not None:
        headers["X-Campaign-Id"] = str(request.campaign_id)
    return headers


@dataclass(frozen=True)
class SipUsage:
    """How much of its capacity a gateway uses now, and what its SIP worker processes cost."""

    in_use: int  # pjsua call slots held: live outbound and inbound calls, SIP-URI workers' legs
    capacity: int  # what the running workers hold at once (probed), as ``SipGateway.capacity``
    cpu_seconds: float  # user + system CPU time of the running worker processes since each started
    rss_bytes: int  # their resident memory


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cost(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident bytes of a process, from Linux's /proc; (0, 0) if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as statm:
            resident = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0, 0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, resident * _PAGE


@dataclass
class _Outbound:
    attempt_id: UUID
    worker: WorkerProcess | None = None
    answered: bool = False
    hangup_asked: bool = False
    hangup_reason: str | None = None
    trunk_id: UUID | None = None
    caller: str = ""  # the DID presented: a bridged transfer's human leg shows it too
    sip_worker: bool = False  # its voice worker is a SIP URI: a second call slot (sip/sip_worker.py)


class SipGateway(CallLauncher):
    """Outbound and inbound SIP calls over ``workers`` pjsua2 processes on ``port``, ``port + 1``, ….

    ``trunks`` looks up the trunk of a call; ``inbound`` maps a called number (E.164 when it reads as
    one) to its route, None meaning 404. ``on_event`` gets outbound call events and ``on_inbound``
    inbound ones (it may return an awaitable, which is run as a task); ``on_media`` gets the RTP
    counts of each outbound call at its end. All callbacks run on the asyncio loop thread.
    ``media_sockets`` is the handle table of the pjsua build's media ioqueue; 0 (default): the build's
    own (64 in the PyPI wheel, 8192 from deploy/build-pjsua2; docs/capacity.md).
    ``transfer_lines`` call slots of each worker are kept for the human legs of bridged transfers (a
    leg must be in its call's process): calls never take them, and ``capacity()`` leaves them out.
    ``tls`` adds a TLS transport for trunks with ``Transport.TLS``; it listens on ``tls_port + i``
    (with the PEM certificate and key given) when ``tls_port`` is set, else on an ephemeral port.
    ``worker_urls`` maps an agent id to its voice worker's WebSocket URL: answered calls of agents
    that have one are streamed to it (sip/stream.py), or, for a ``sip:`` URI, bridged to a second
    SIP leg to it (sip/sip_worker.py), and ``on_bridge`` gets what the worker asks
    (TransferRequested, HangupRequested) and whether it took the call (WorkerConnected, WorkerMissing).
    Without it, answered calls stay up with no bridge. ``worker_reconnects`` attempts (``worker_backoff``
    s apart, doubling) re-open a worker socket that drops mid-call before the call is hung up.
    ``recordings_dir``: where the SIP workers write the WAVs of calls asked to be recorded
    (``CallRequest.record``, calls with a voice worker), ``<dir>/<tenant>/<call id>.wav``; each is
    reported to ``on_recording`` once complete (after the call's end). None: nothing is recorded.
    """

    def __init__(
        self,
        trunks: TrunkLookup,
        inbound: InboundRouter | None = None,
        on_inbound: InboundCallback | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        workers: int = 1,
        rtp_port: int = 20000,
        rtp_ports_per_worker: int = 2000,
        max_calls_per_worker: int = 512,
        media_sockets: int = 0,
        transfer_lines: int = 0,
        tls: bool = False,
        tls_port: int | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        max_call_seconds: float = 3600.0,
        max_call_seconds_for: Callable[[CallRequest], float | None] | None = None,
        log_level: str = "WARNING",
        clock_idle_seconds: float = 5.0,
        worker_urls: WorkerResolver | None = None,
        worker_reconnects: int = 0,
        worker_backoff: float = 0.1,
        refer_timeout: float = 8.0,
        transfer_ring_seconds: float = 30.0,
        recordings_dir: str | Path | None = None,
        amd_messages: MessageCache | None = None,
    ) -> None:
        super().__init__()
        self.on_recording: Callable[[RecordingMade], None] = lambda event: None
        self.recordings_dir = Path(recordings_dir).resolve() if recordings_dir is not None else None
        self.on_media: Callable[[UUID, MediaStats], None] = lambda attempt_id, stats: None
        self.on_bridge: Callable[[BridgeEvent], None] = lambda event: None
        # (reason, count) of INVITEs the workers refused by the inbound policy (no call was made)
        self.on_refused: Callable[[str, int], None] = lambda reason, count: None
        self._policy = SetInboundPolicy()  # None/None: every source, every number offered to ``inbound``
        self.max_call_seconds = max_call_seconds
        self.refer_timeout = refer_timeout  # REFER → final NOTIFY, before ``auto`` bridges instead
        self.transfer_ring_seconds = transfer_ring_seconds  # a bridged transfer's human must answer by then
        self._transferring: dict[UUID, str] = {}  # call id → method, while a transfer is under way
        self._max_call_seconds_for = max_call_seconds_for
        # Answering-machine messages, fetched once per URL; a folder of its own unless one is given.
        self._amd_messages = amd_messages or MessageCache(Path(tempfile.gettempdir()) / "dialer-amd-messages")
        self._trunks = trunks
        self._worker_urls = worker_urls
        self._reconnects = (worker_reconnects, worker_backoff)
        streams = self._inbound_stream if worker_urls is not None else None
        self._desk = InboundDesk(inbound, max_call_seconds, lambda: self._running, streams)
        if on_inbound is not None:
            self.on_inbound = on_inbound
        configs = [
            WorkerConfig(
                name=f"sip-{i}",
                index=i,
                host=host,
                port=port + i,
                rtp_port=rtp_port + i * rtp_ports_per_worker,
                rtp_ports=rtp_ports_per_worker,
                max_calls=max_calls_per_worker,
                media_sockets=media_sockets,
                transfer_lines=transfer_lines,
                tls=tls,
                tls_port=tls_port + i if tls_port else 0,
                tls_cert=tls_cert_file or "",
                tls_key=tls_key_file or "",
                log_level=log_level,
                clock_idle_seconds=clock_idle_seconds,
            )
            for i in range(workers)
        ]
        self._supervisor = Supervisor(configs, self._on_worker_event, self._on_lost, self._on_ready)
        self._keys = itertools.count(1)
        self._calls: dict[int, _Outbound] = {}
        self._by_attempt: dict[UUID, int] = {}
        self._known_trunks: dict[UUID, TrunkConfig] = {}
        self._worker_trunks: dict[str, dict[UUID, TrunkConfig]] = {}  # what each worker's accounts hold
        self._registrations: dict[UUID, int] = {}
        self._sip_inbound: set[tuple[str, int]] = set()  # (worker, key) of inbound calls to SIP-URI workers
        self._running = False

    @property
    def on_inbound(self) -> InboundCallback:
        """Gets InboundOffered / InboundAnswered / InboundEnded; may return an awaitable."""
        return self._desk.on_event

    @on_inbound.setter
    def on_inbound(self, callback: InboundCallback) -> None:
        self._desk.on_event = callback

    # ---- lifecycle and state -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and learn its capacity; raises GatewayError if one cannot start."""
        await self._supervisor.start()
        self._running = True

    async def stop(self) -> None:
        """Hang up every call, stop the workers cleanly; every live call is reported ended."""
        self._running = False
        await self._supervisor.stop()
        await self._desk.close()

    def capacity(self) -> int:
        """Calls the running workers can hold at once: each worker's probed capacity, summed, less the
        second call slot each live call to a SIP-URI voice worker holds for its worker leg."""
        legs = sum(1 for call in self._calls.values() if call.sip_worker) + len(self._sip_inbound)
        return max(0, self._supervisor.capacity() - legs)

    def usage(self) -> SipUsage:
        """Slots in use against capacity, and the worker processes' CPU time and memory (cheap: reads
        /proc once per worker; a rate of ``cpu_seconds`` over ``in_use`` is the CPU per call)."""
        legs = sum(1 for call in self._calls.values() if call.sip_worker) + len(self._sip_inbound)
        cpu, rss = 0.0, 0
        for pid in self.workers().values():
            if pid is not None:
                seconds, resident = process_cost(pid)
                cpu, rss = cpu + seconds, rss + resident
        in_use = len(self._calls) + self._desk.live() + legs
        return SipUsage(in_use, self._supervisor.capacity(), cpu, rss)

    def live_attempts(self) -> set[UUID]:
        return set(self._by_attempt)

    def workers(self) -> dict[str, int | None]:
        """Worker name → process id (None while it is down), for ops and tests."""
        return {worker.name: worker.pid for worker in self._supervisor.workers}

    def registration(self, trunk_id: UUID) -> int | None:
        """The last final response to the trunk's REGISTER (None before any)."""
        return self._registrations.get(trunk_id)

    async def add_trunk(self, trunk: TrunkConfig) -> None:
        """Build the trunk's account in every worker now, and after every restart (REGISTER if set)."""
        self._known_trunks[trunk.id] = trunk
        for worker in self._supervisor.workers:
            if worker.capacity:
                self._ensure_trunk(worker, trunk)

    def inbound_policy(self) -> SetInboundPolicy:
        """The inbound policy every worker has (or gets on its next start)."""
        return self._policy

    def set_inbound_policy(self, networks: list[str] | None, numbers: list[str] | None) -> None:
        """Which INVITEs every worker refuses by itself, before any call or round trip to the router:
        from a source outside ``networks`` (CIDRs or addresses) 403, for a number not in ``numbers``
        (E.164) 404. None leaves that check off. Kept across worker restarts."""
        policy = SetInboundPolicy(sorted(networks) if networks is not None else None,
                                  sorted(numbers) if numbers is not None else None)  # fmt: skip
        if policy == self._policy:
            return
        self._policy = policy
        for worker in self._supervisor.workers:
            # A restart starts closed to every source until this policy reaches it (when it has any).
            worker.config = replace(worker.config, inbound_closed=networks is not None)
            if worker.capacity:
                worker.send(policy)

    # ---- outbound calls ----------------------------------------------------------------------------

    async def place(self, request: CallRequest) -> None:
        if not self._running:
            raise GatewayError("the SIP gateway is not running")
        if request.attempt_id in self._by_attempt:
            raise GatewayError("this attempt already has a call")  # never dial one attempt twice
        trunk = await self._trunks(request.trunk_id)
        if trunk is None:
            raise GatewayError(f"unknown trunk {request.trunk_id}")
        why = refusal(trunk, request.to_number)
        if why is not None:
            log.info("attempt %s refused: %s", request.attempt_id, why)
            raise LaunchRefused(why)
        caller = trunk.caller_uri(request.from_number)
        limit = self._max_call_seconds_for(request) if self._max_call_seconds_for else None
        stream = await self._outbound_stream(request)
        amd = await self._amd_spec(request)
        key = next(self._keys)
        command = Dial(
            key=key,
            trunk=str(trunk.id),
            uri=trunk.request_uri(request.to_number),
            from_uri=caller,
            headers=call_headers(caller, request),
            timeout=float(request.timeout_seconds),
            max_duration=limit or self.max_call_seconds,
            stream=stream.wire() if stream else None,
            amd=amd.wire() if amd else None,
        )
        call = self._calls[key] = _Outbound(
            request.attempt_id,
            trunk_id=trunk.id,
            caller=request.from_number,
            sip_worker=bool(stream and stream.sip),
        )
        self._by_attempt[request.attempt_id] = key  # events can arrive before dial() returns
        try:
            call.worker = await self._supervisor.dial(command, lambda w: self._ensure_trunk(w, trunk))
        except BaseException:
            self._forget(key)
            raise
        log.debug("attempt %s placed on %s", request.attempt_id, call.worker.name)
        if call.hangup_asked:
            call.worker.send(Hangup(key, call.hangup_reason))

    async def hangup(self, attempt_id: UUID, reason: str | None = None) -> None:
        """Hang up an outbound attempt or an inbound call (by its call id); nothing if not up here.
        ``reason``: the call's end reason (the first one given stands)."""
        key = self._by_attempt.get(attempt_id)
        call = self._calls.get(key) if key is not None else None
        if call is not None and call.worker is None:
            call.hangup_asked = True  # still being placed: hung up as soon as it is out
            call.hangup_reason = call.hangup_reason or reason
            return
        self._send_to_call(attempt_id, lambda key: Hangup(key, reason))

    # ---- the call's audio --------------------------------------------------------------------------

    async def _amd_spec(self, request: CallRequest) -> AmdSpec | None:
        """The call's answering-machine detection, its message fetched (or the machine hung up on)."""
        amd = request.amd
        if amd is None or not amd.enabled:
            return None
        action, path = amd.on_machine, ""
        if action == "leave_message" and amd.message_url:
            path = await self._amd_messages.path(amd.message_url) or ""
            action = action if path else "hangup"  # no message to leave: nothing to wait for either
        return AmdSpec(
            wait_for_end=amd.mode == "detect_and_wait_for_beep" or action == "leave_message",
            timeout=float(amd.timeout_seconds),
            asynchronous=amd.asynchronous,
            on_machine=action,
            message_path=path,
        )

    async def _outbound_stream(self, request: CallRequest) -> StreamSpec | None:
        if self._worker_urls is None or request.agent_id is None:
            return None
        url = await self._worker_urls(request.agent_id)
        if not url:
            return None
        stream = outbound_stream(url, request, *self._reconnects)
        if request.record and self.recordings_dir is not None:
            path = self.recordings_dir / str(request.tenant_id) / f"{request.attempt_id}.wav"
            stream = replace(stream, record=str(path))
        return stream

    async def _inbound_stream(
        self, route: InboundRoute, call_id: UUID, called: str, caller: str | None
    ) -> StreamSpec | None:
        assert self._worker_urls is not None
        url = await self._worker_urls(route.agent_id)
        stream = inbound_stream(url, route, call_id, called, caller, *self._reconnects) if url else None
        if stream is not None and stream.sip and (found := self._desk.locate(call_id)) is not None:
            self._sip_inbound.add((found[0].name, found[1]))  # its second call slot, until it ends
        return stream

    def _send_to_call(self, call_id: UUID, command: Callable[[int], Command]) -> bool:
        """Send ``command(key)`` to the worker holding the call (attempt id or inbound call id)."""
        key = self._by_attempt.get(call_id)
        call = self._calls.get(key) if key is not None else None
        if key is not None and call is not None and call.worker is not None:
            call.worker.send(command(key))
            return True
        found = self._desk.locate(call_id)
        if found is None:
            return False
        found[0].send(command(found[1]))
        return True

    def play(self, call_id: UUID, wav_path: str, once: bool = False) -> bool:
        """Play a 16-bit mono WAV into an answered call (looping unless ``once``); False: no such call."""
        return self._send_to_call(call_id, lambda key: PlayFile(key, wav_path, once))

    def record(self, call_id: UUID, wav_path: str) -> bool:
        """Record what an answered call receives to a WAV file, complete once the call ended."""
        return self._send_to_call(call_id, lambda key: RecordTo(key, wav_path))

    def send_dtmf(self, call_id: UUID, digits: str) -> bool:
        """Send RFC 2833 DTMF digits on an answered call."""
        return self._send_to_call(call_id, lambda key: SendDtmf(key, digits))

    async def transfer(self, call_id: UUID, to_number: str, mode: str = "auto") -> None:
        """Start handing the far end of a live answered call (attempt id or inbound call id) to
        ``to_number`` (E.164); progress comes to ``on_bridge``. GatewayError when it cannot start."""
        if mode not in TRANSFER_MODES:
            raise GatewayError(f"unknown transfer mode {mode!r}")
        origin = self._transfer_origin(call_id)
        if origin is None:
            raise GatewayError("no such live call on this gateway")
        worker, key, trunk_id, did = origin
        trunk = await self._trunks(trunk_id) if trunk_id is not None else None
        if trunk is None:
            raise GatewayError("the call's trunk is unknown: it cannot be transferred")
        why = refusal(trunk, to_number)
        if why is not None:
            raise GatewayError(f"transfer refused: {why}")
        if call_id in self._transferring:
            raise GatewayError("a transfer of this call is already under way")
        caller = trunk.caller_uri(did)
        self._ensure_trunk(worker, trunk)
        self._transferring[call_id] = mode
        worker.send(
            Transfer(
                key=key,
                mode=mode,
                trunk=str(trunk.id),
                refer_uri=trunk.refer_uri(to_number),
                bridge_uri=trunk.request_uri(to_number),
                from_uri=caller,
                headers={"P-Asserted-Identity": f"<{caller}>", "X-Transfer-Of": str(call_id)},
                refer_timeout=self.refer_timeout,
                ring_timeout=self.transfer_ring_seconds,
            )
        )
        log.info("call %s: %s transfer started on %s", call_id, mode, worker.name)

    def refuse_transfer(self, call_id: UUID, reason: str) -> bool:
        """Tell a live call's voice worker (``transfer_failed``) that the transfer it asked for was
        refused before it started; ``reason`` must not name a number. False: no such call here."""
        return self._send_to_call(call_id, lambda key: TransferRefused(key, reason))

    def _transfer_origin(self, call_id: UUID) -> tuple[WorkerProcess, int, UUID | None, str] | None:
        key = self._by_attempt.get(call_id)
        call = self._calls.get(key) if key is not None else None
        if key is not None and call is not None:
            if call.worker is None or not call.answered:
                return None
            return call.worker, key, call.trunk_id, call.caller
        return self._desk.transfer_origin(call_id)

    def _bridge_event(
        self,
        worker: WorkerProcess,
        event: CallBridgeEvent,
    ) -> None:
        outbound = self._calls.get(event.key)
        call_id = outbound.attempt_id if outbound is not None else self._desk.call_id(worker, event.key)
        if call_id is None:
            return
        inbound = outbound is None
        if isinstance(event, StreamJoined):
            answered = utc(event.answered_at)
            if event.connected_at is None:
                self.on_bridge(WorkerMissing(call_id, answered, utc(event.at), inbound, event.ended))
            else:
                self.on_bridge(WorkerConnected(call_id, answered, utc(event.connected_at), inbound))
            return
        at = utc(event.at)
        if isinstance(event, TransferAsked):
            self.on_bridge(TransferRequested(call_id, event.to, event.mode, at, inbound))
        elif isinstance(event, HangupAsked):
            self.on_bridge(HangupRequested(call_id, event.reason, at, inbound))
        elif isinstance(event, TransferUpdate):
            progress = TransferProgress(
                call_id, event.method, event.code, event.reason, event.final, at, inbound
            )
            self.on_bridge(progress)
        elif isinstance(event, ReferReceived):
            self.on_bridge(ReferFromFarEnd(call_id, event.accepted, at, inbound))
        elif isinstance(event, OptOutAsked):
            self.on_bridge(OptOutRequested(call_id, at, inbound))
        elif isinstance(event, DtmfHeard):
            self.on_bridge(DigitPressed(call_id, event.digit, at, inbound))
        else:
            self._transferring.pop(call_id, None)
            started = utc(event.started_at)
            if event.result == "failed":
                failed = TransferFailed(call_id, event.method, event.code, event.reason, started, at, inbound)
                self.on_bridge(failed)
            else:
                done = TransferCompleted(
                    call_id, event.method, event.result, event.code, started, at, inbound
                )
                self.on_bridge(done)

    # ---- worker events -------------------------------------------------------------------------------

    def _ensure_trunk(self, worker: WorkerProcess, trunk: TrunkConfig) -> None:
        built = self._worker_trunks.setdefault(worker.name, {})
        if built.get(trunk.id) != trunk:
            # Only the first worker registers: it owns the public SIP port the trunk sends calls to.
            worker.send(AddTrunk(**trunk.account(register=worker.config.index == 0)))
            built[trunk.id] = trunk

    def _on_ready(self, worker: WorkerProcess) -> None:
        self._worker_trunks[worker.name] = {}  # a fresh process has no accounts yet
        worker.send(self._policy)
        for trunk in self._known_trunks.values():
            self._ensure_trunk(worker, trunk)

    def _forget(self, key: int) -> _Outbound | None:
        call = self._calls.pop(key, None)
        if call is not None:
            self._by_attempt.pop(call.attempt_id, None)
        return call

    def _on_worker_event(self, worker: WorkerProcess, event: Event) -> None:
        if isinstance(event, Recorded):
            self._recorded(event)
            return
        if isinstance(event, CallBridgeEvent):
            self._bridge_event(worker, event)  # before the desk: inbound calls have these too
            return
        if isinstance(event, Ended):
            self._transfer_ended(worker, event)
            self._sip_inbound.discard((worker.name, event.key))
        if self._desk.handle(worker, event):
            return
        if isinstance(event, Ringing) and (call := self._calls.get(event.key)):
            self.on_event(CallRinging(call.attempt_id, utc(event.at), event.pdd_ms))
        elif isinstance(event, Answered) and (call := self._calls.get(event.key)):
            call.answered = True
            self.on_event(CallAnswered(call.attempt_id, utc(event.at)))
        elif isinstance(event, Ended) and (call := self._forget(event.key)):
            self._report_end(call, event, worker.name)
        elif isinstance(event, InboundRefused):
            for reason, count in event.counts.items():
                self.on_refused(reason, count)
        elif isinstance(event, Registration):
            self._registrations[UUID(event.trunk)] = event.code
            log.info("trunk %s REGISTER answered %d (expires %d s)", event.trunk, event.code, event.expires)
        elif isinstance(event, TrunkError):
            log.error("trunk %s account rejected by %s: %s", event.trunk, worker.name, event.message)

    def _recorded(self, event: Recorded) -> None:
        try:
            call_id, tenant_id = UUID(event.call_sid), UUID(event.tenant)
        except ValueError:
            log.warning("a recording with malformed call ids was dropped")
            return
        started = utc(event.started_at) if event.started_at else None
        self.on_recording(RecordingMade(call_id, tenant_id, event.path, event.seconds, started, event.error))

    def _transfer_ended(self, worker: WorkerProcess, event: Ended) -> None:
        """A call ended with its transfer still under way (the far end hung up): that transfer failed."""
        outbound = self._calls.get(event.key)
        call_id = outbound.attempt_id if outbound is not None else self._desk.call_id(worker, event.key)
        method = self._transferring.pop(call_id, None) if call_id is not None else None
        if call_id is not None and method is not None:
            at = utc(event.at)
            self.on_bridge(TransferFailed(call_id, method, None, "the call ended", at, at, outbound is None))

    def _report_end(self, call: _Outbound, event: Ended, worker: str) -> None:
        self.on_event(
            CallEnded(
                attempt_id=call.attempt_id,
                at=utc(event.at),
                sip_code=event.code,
                reason=f"{event.reason} ({event.limit})" if event.limit else event.reason,
                confirmed=event.confirmed,
                q850_cause=event.cause,
                invited_at=utc(event.started_at),
                ringing_at=utc(event.ringing_at) if event.ringing_at else None,
                answered_at=utc(event.answered_at) if event.answered_at else None,
                transferred=event.transferred,
                worker=worker,
                answered_by=event.answered_by,
                amd_seconds=event.amd_ms / 1000 if event.amd_ms is not None else None,
            )
        )
        media = MediaStats.from_wire(event.rtp)
        if media is not None:
            self.on_media(call.attempt_id, media)

    def _on_lost(self, worker: WorkerProcess, keys: set[int]) -> None:
        now = datetime.now(UTC)
        self._sip_inbound -= {(worker.name, key) for key in keys}
        for key in sorted(self._desk.lost(worker, keys, WORKER_DIED)):
            call = self._forget(key)
            if call is not None:
                log.warning("attempt %s lost with %s", call.attempt_id, worker.name)
                self.on_event(
                    CallEnded(
                        call.attempt_id, now, None, WORKER_DIED, call.answered, worker=worker.name, lost=True
                    )
                )
