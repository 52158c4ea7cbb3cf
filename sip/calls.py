"""The calls of one SIP worker, on its SIP thread: dial, answer, reject, hang up, timers, events out."""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from dialer.logs import redact
from sip.amd_media import MESSAGE_LEFT, AmdHeard, AmdPorts, CallAmd, ended_fields
from sip.inbound_policy import InboundPolicy
from sip.media import DYING_SECONDS, CallMedia, PortPool
from sip.message import called_user, caller_user, q850_cause
from sip.protocol import (
    RETRY_AFTER,
    AmdSpec,
    Answer,
    Answered,
    Dial,
    DtmfHeard,
    Ended,
    Event,
    Failed,
    Full,
    HangupAsked,
    Offered,
    OptOutAsked,
    Placed,
    PlayFile,
    Recorded,
    RecordTo,
    Reject,
    Rejected,
    Ringing,
    SendDtmf,
    StreamSpec,
    TransferAsked,
)
from sip.recorder import CallRecording
from sip.stream import WORKER_HANGUP, StreamHub, StreamRequest

if TYPE_CHECKING:
    from sip.sip_worker import WorkerDesk
    from sip.transfers import TransferDesk

log = logging.getLogger(__name__)

PJ_ETOOMANY = 70010  # pjsua has no free call slot (its PJSUA_MAX_CALLS build cap or uaConfig.maxCalls)
DECISION_SECONDS = 5.0  # an offered inbound call the gateway did not decide on by then gets 503
NO_WORKER_LINE = "no free line for the SIP worker"  # a call to a SIP-URI worker needs a second slot
# Every call opens an RTP and an RTCP socket in pjmedia's ioqueue, whose handle table is fixed at build
# time (64 in the PyPI wheel, select()). A closed socket's handle is reused only 500 ms later
# (PJ_IOQUEUE_KEY_FREE_DELAY), and registering one more than the table holds aborts the process: so
# above ~55 calls/s a wheel worker dies. Count closed sockets for this long and refuse to exceed.
SOCKET_REUSE_SECONDS = 0.6
SOCKETS_PER_CALL = 2

Emit = Callable[[Event], None]


class Call(pj.Call):  # type: ignore[misc]  # pjsua2 has no stubs
    """One pjsua2 call and what we learned about it; only ever touched on the SIP thread."""

    def __init__(self, table: CallTable, account: pj.Account, call_id: int, key: int, outbound: bool) -> None:
        super().__init__(account, call_id)
        self.table = table
        self.key = key
        self.outbound = outbound
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.ringing_at: float | None = None
        self.answered_at: float | None = None
        self.decided = outbound
        self.limit: str | None = None
        self.max_duration = 0.0
        self.rtp: dict[str, int] = {}
        self.ended_code: int | None = None
        self.media = CallMedia(key, table.ports)
        self.trunk_account = account  # its ``accept_refer`` decides on a REFER from the far end
        self.transferred = False  # not ``xfer``: that name would hide Call.xfer()
        self.amd: CallAmd | None = None  # answering-machine detection (sip/amd_media.py)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.table.on_state(self, prm)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.media.media_changed(self, self.table.hub)
        if self.amd is not None and self.answered_at is not None:
            self.amd.start(self, self.table)
        if self.key and self.table.workers is not None:
            self.table.workers.media_changed(self)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        if self.media.session is not None:
            self.media.session.dtmf(prm.digit)  # never logged: digits can be personal data
        elif self.key and self.table.workers is not None:
            self.table.workers.relay_dtmf(self.key, prm.digit, to_callee=False)
        if self.key:  # not a capacity probe's twin: the dialer checks the campaign's opt-out digit
            self.table.emit(DtmfHeard(self.key, prm.digit, time.time()))

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        if self.table.transfers is not None:
            self.table.transfers.refer_status(self, prm)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        if self.table.transfers is None:
            prm.statusCode = 603
        else:
            self.table.transfers.refer_request(self, prm)

    def onStreamDestroyed(self, prm: pj.OnStreamDestroyedParam) -> None:
        # The stream is still there: its counters are readable for the last time.
        stat = self.getStreamStat(prm.streamIdx).rtcp
        self.rtp = {"rx": stat.rxStat.pkt, "tx": stat.txStat.pkt, "rx_lost": stat.rxStat.loss}


def _op(code: int = 0, headers: dict[str, str] | None = None) -> pj.CallOpParam:
    prm = pj.CallOpParam(True)
    prm.statusCode = code
    for name, value in (headers or {}).items():
        header = pj.SipHeader()
        header.hName, header.hValue = name, value
        prm.txOption.headers.append(header)
    return prm


class CallTable:
    """Live calls by integer key, their timers, and the events they produce.

    A Call object is dropped right after DISCONNECTED (``reap``), on the SIP thread: pjsua reuses
    call slots, and deleting an old object after its slot was reused hangs up the new call.
    """

    def __init__(self, emit: Emit, media_sockets: int, hub: StreamHub | None = None) -> None:
        self.emit = emit
        self.media_sockets = media_sockets
        self.hub = hub  # None: answered calls are never bridged to a voice worker
        self.ports = PortPool()  # voice-worker stream ports, reused (never destroyed while pjsua runs)
        self.amd_ports = AmdPorts()  # answering-machine detectors' ports, likewise
        # To the SIP thread from any other (a recording's merge thread, pjsua's clock thread for answering-
        # machine verdicts); the worker process sets a thread-safe one. None: no Worker (no detection, and
        # a recording's merge reports through emit).
        self.post: Callable[[Recorded | AmdHeard], None] | None = None
        self.transfers: TransferDesk | None = None  # set by the desk; None: REFERs get 603
        self.workers: WorkerDesk | None = None  # SIP-URI voice workers' legs; set by the desk
        self.capacity = 0  # pjsua call slots (the probe's answer); 0: unknown, pjsua alone refuses
        self.transfer_lines = 0  # of those, kept for bridged transfers' human legs: no call takes them
        self.calls: dict[int, Call] = {}
        self.closing = False
        self.probe_user: str | None = None  # inbound calls for this user are capacity-probe twins
        # Replaced by the gateway's (SetInboundPolicy) right after Ready; the Stack closes it to every
        # source before then when the gateway restricts sources (WorkerConfig.inbound_closed).
        self.policy = InboundPolicy()  # sip/screen.py applies it before pjsua does
        self.refused: Counter[str] = Counter()  # refusals by the policy here (screen off), by reason
        self.probes: list[Call] = []
        self._finished: list[Call] = []
        self._timers: list[tuple[float, int, str]] = []
        self._next_inbound = 0
        self._closed: deque[float] = deque()  # when recent calls' media sockets closed (monotonic)
        self._dying: deque[tuple[float, list[Any]]] = deque()  # ended calls' media, dropped later

    # ---- commands ----------------------------------------------------------------------------

    def room(self, lines: int = 1) -> float:
        """0 when ``lines`` more calls' media sockets fit in pjmedia's ioqueue, else seconds until they do."""
        now = time.monotonic()
        while self._closed and self._closed[0] + SOCKET_REUSE_SECONDS < now:
            self._closed.popleft()
        # Closed-but-held transports we can afford next to the live calls and the new ones.
        spare = self.media_transports() - len(self.calls) - self.reserved() - lines
        if spare < 0:
            return SOCKET_REUSE_SECONDS
        if len(self._closed) <= spare:
            return 0.0
        return self._closed[len(self._closed) - spare - 1] + SOCKET_REUSE_SECONDS - now

    def media_transports(self) -> int:
        """How many calls' sockets pjmedia's ioqueue holds, keeping two of head-room."""
        return self.media_sockets // SOCKETS_PER_CALL - 2

    def reserved(self) -> int:
        """Call slots held beside the table's calls: SIP-URI voice workers' legs, held from dial or
        answer on (sip/sip_worker.py), and what transfers hold (sip/transfers.py ``TransferDesk.held``)."""
        workers = self.workers.reserved() if self.workers is not None else 0
        return workers + (self.transfers.held() if self.transfers is not None else 0)

    def lines_left(self) -> int | None:
        """pjsua call slots neither in use nor held for a leg; None while the cap is unknown. A
        transfer's human leg may take any of them, the ``transfer_lines`` kept for legs included."""
        return self.capacity - len(self.calls) - self.reserved() if self.capacity else None

    def lines_for_calls(self) -> int | None:
        """The free slots a new call may take: ``lines_left`` less the transfer lines no transfer uses.

        A call to a SIP-URI worker needs two: the worker refuses a call it could not also bridge.
        """
        left = self.lines_left()
        if left is None:
            return None
        held = self.transfers.held() if self.transfers is not None else 0
        return left - max(0, self.transfer_lines - held)

    def dial(self, cmd: Dial, account: pj.Account) -> None:
        spec = StreamSpec.from_wire(cmd.stream) if cmd.stream else None
        lines = 2 if spec is not None and spec.sip else 1
        wait = self.room(lines)
        if wait > 0:
            self.emit(Full(cmd.key, max(round(wait, 3), 0.001)))
            return
        left = self.lines_for_calls()
        if left is not None and left < lines:
            self.emit(Full(cmd.key))
            return
        call = Call(self, account, pj.PJSUA_INVALID_ID, cmd.key, outbound=True)
        prm = _op(headers=cmd.headers)
        prm.txOption.localUri = cmd.from_uri
        call.max_duration = cmd.max_duration
        self._attach(call, spec)
        if cmd.amd and self.post is not None:  # no way to the SIP thread (no Worker): no detection
            call.amd = CallAmd(AmdSpec.from_wire(cmd.amd))
            call.media.held = call.amd.holds_stream()
        self.calls[cmd.key] = call  # callbacks may already run inside makeCall
        try:
            call.makeCall(cmd.uri, prm)
        except pj.Error as exc:
            self.calls.pop(cmd.key, None)
            if self.workers is not None:
                self.workers.unreserve(cmd.key)
            self.emit(Full(cmd.key) if exc.status == PJ_ETOOMANY else Failed(cmd.key, redact(exc.reason)))
            return
        self.emit(Placed(cmd.key, call.started_at))
        self._after(cmd.timeout, cmd.key, "timeout")

    def answer(self, cmd: Answer) -> None:
        call = self.calls.get(cmd.key)
        if call is None or call.decided:
            return
        spec = StreamSpec.from_wire(cmd.stream) if cmd.stream else None
        left = self.lines_for_calls()  # this call's own slot is counted already
        if spec is not None and spec.sip and left is not None and left < 1:
            call.limit = NO_WORKER_LINE
            self.reject(Reject(cmd.key, 486))
            return
        call.decided = True
        call.max_duration = cmd.max_duration
        self._attach(call, spec)
        self._safely(call, lambda: call.answer(_op(200)))

    def _attach(self, call: Call, spec: StreamSpec | None) -> None:
        """Where the answered call's audio goes: a WebSocket stream, or a SIP-URI worker's leg; and
        whether it is recorded (sip/recorder.py)."""
        if spec is not None and spec.record:
            call.media.recording = CallRecording(spec, self.post or self.emit)
        if spec is not None and spec.sip and self.workers is not None:
            self.workers.reserve(call, spec)
        else:
            call.media.stream = spec

    def reject(self, cmd: Reject) -> None:
        call = self.calls.get(cmd.key)
        if call is None or call.decided:
            return
        call.decided = True
        headers = {"Retry-After": str(cmd.retry_after)} if cmd.retry_after else None
        self._safely(call, lambda: call.hangup(_op(cmd.code, headers)))

    def hangup(self, key: int, limit: str | None = None) -> None:
        call = self.calls.get(key)
        if call is None:
            return
        call.limit = call.limit or limit
        call.decided = True
        self._safely(call, lambda: call.hangup(_op()))

    def play(self, cmd: PlayFile | RecordTo | SendDtmf) -> None:
        """Play a WAV into, record from, or send DTMF on an answered call."""
        call = self.calls.get(cmd.key)
        if call is None:
            return
        if isinstance(cmd, SendDtmf):
            self._safely(call, lambda: call.dialDtmf(cmd.digits))
            return
        try:
            done = (
                call.media.play(cmd.path, cmd.once)
                if isinstance(cmd, PlayFile)
                else call.media.record(cmd.path)
            )
        except pj.Error as exc:
            log.warning("call %d: %s failed: %s", call.key, type(cmd).__name__, redact(exc.reason))
            return
        if not done:
            log.warning("call %d: %s ignored: no active audio", call.key, type(cmd).__name__)

    def stream_request(self, request: StreamRequest) -> None:
        """Act on what a call's voice-worker stream asked (on the SIP thread)."""
        call = self.calls.get(request.key)
        if call is None:
            return
        if request.action in ("connected", "lost"):
            self._worker_joined(call)  # "lost" before "connected": the worker never took the call
        if request.action == "connected":
            return
        if request.action == "transfer":
            self.emit(TransferAsked(request.key, request.to, request.mode, time.time()))
        elif request.action == "opt_out":  # the call goes on: the worker decides what to say
            self.emit(OptOutAsked(request.key, time.time()))
        elif request.action == "hangup":
            self.emit(HangupAsked(request.key, request.reason, time.time()))
            self.hangup(request.key, WORKER_HANGUP)
        else:  # "lost": no dead air
            self.hangup(request.key, request.reason)

    def amd_heard(self, heard: AmdHeard) -> None:
        """A verdict of a call's answering-machine detector (on the SIP thread)."""
        call = self.calls.get(heard.key)
        if call is not None and call.amd is not None and not call.amd.settled:
            call.amd.heard(call, self, heard.verdict)

    def _worker_joined(self, call: Call, ended: bool = False) -> None:
        since = call.amd.abandon_clock(call.answered_at) if call.amd is not None else call.answered_at
        if (joined := call.media.joined(since, ended)) is not None:
            self.emit(joined)

    def _safely(self, call: Call, action: Callable[[], None]) -> None:
        try:
            action()
        except pj.Error as exc:  # the call ended meanwhile; its DISCONNECTED reports it
            log.debug("call %d: %s", call.key, redact(exc.reason))

    # ---- pjsua callbacks -----------------------------------------------------------------------

    def incoming(self, account: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        message = prm.rdata.wholeMsg
        called = called_user(message)
        if self.probe_user is not None and called == self.probe_user:
            twin = Call(self, account, prm.callId, 0, outbound=False)
            self.probes.append(twin)
            twin.answer(_op(180))
            return
        self._next_inbound -= 1
        call = Call(self, account, prm.callId, self._next_inbound, outbound=False)
        self.calls[call.key] = call
        if self.closing:
            self.reject(Reject(call.key, 503, RETRY_AFTER))
            return
        # The screen (sip/screen.py) refuses these before pjsua makes a call; without it, here.
        verdict = self.policy.verdict(prm.rdata.srcAddress.rsplit(":", 1)[0].strip("[]"), called)
        if verdict is not None:
            self.refused[verdict.reason] += 1
            self.reject(Reject(call.key, verdict.code))
            return
        left = self.lines_for_calls()
        if left is not None and left < 0:  # it took a slot held for a leg: busy, as a full pjsua is
            self.emit(Rejected(called, caller_user(message), 486, call.started_at))
            self.reject(Reject(call.key, 486))
            return
        self.emit(Offered(call.key, called or "", caller_user(message), call.started_at))
        self._after(DECISION_SECONDS, call.key, "decision")

    def on_state(self, call: Call, prm: pj.OnCallStateParam) -> None:
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_EARLY and call.ringing_at is None:
            if 180 <= info.lastStatusCode < 190:
                call.ringing_at = time.time()
                if call.outbound and call.key:
                    pdd = (time.monotonic() - call.started_mono) * 1000
                    self.emit(Ringing(call.key, call.ringing_at, round(pdd, 1)))
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED and call.answered_at is None:
            call.answered_at = time.time()
            call.media.confirmed(self.hub)
            if call.amd is not None:
                call.amd.start(call, self)
            if call.key:
                self.emit(Answered(call.key, call.answered_at))
                self._after(call.max_duration, call.key, "max duration")
                if self.workers is not None:
                    self.workers.answered(call)  # a SIP-URI worker: its leg is placed now
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            call.ended_code = info.lastStatusCode
            if call.amd is not None:
                call.amd.stop(call, self)
            self._closed.append(time.monotonic())
            self._dying.append((time.monotonic() + DYING_SECONDS, call.media.detach()))
            self._finished.append(call)
            if call.key and self.calls.pop(call.key, None) is not None:
                self._worker_joined(call, ended=True)
                if self.workers is not None:
                    self.workers.call_ended(call)  # before Ended: the gateway still knows the call
                self.emit(self._ended(call, info, prm))
            if self.transfers is not None:
                self.transfers.call_ended(call)

    def _ended(self, call: Call, info: pj.CallInfo, prm: pj.OnCallStateParam) -> Ended:
        cause = None
        event = prm.e
        if event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
            # The response or BYE that ended the call; its Reason header carries the Q.850 cause.
            cause = q850_cause(event.body.tsxState.src.rdata.wholeMsg)
        return Ended(
            key=call.key,
            at=time.time(),
            code=info.lastStatusCode,
            reason=info.lastReason,
            cause=cause,
            confirmed=call.answered_at is not None,
            started_at=call.started_at,
            ringing_at=call.ringing_at,
            answered_at=call.answered_at,
            limit=call.limit,
            rtp=call.rtp,
            transferred=call.transferred,
            **ended_fields(call.amd),
        )

    # ---- housekeeping on the SIP thread --------------------------------------------------------

    def close(self) -> None:
        """Refuse new inbound calls and mark live ones as ended by our shutdown."""
        # A method of its own: a loop variable left in shutdown()'s frame would keep the last Call
        # object alive past libDestroy, and freeing it then aborts the process.
        self.closing = True
        for call in self.calls.values():
            call.limit = call.limit or "shutdown"

    def reap(self) -> None:
        """Drop the Call objects of calls that reached DISCONNECTED (see the class docstring)."""
        if self._finished:
            self._finished.clear()
        now = time.monotonic()
        while self._dying and self._dying[0][0] <= now:
            doomed = self._dying.popleft()[1]
            recordings = [item for item in doomed if isinstance(item, CallRecording)]
            doomed.clear()  # the last references to players and recorders: destroyed here
            for recording in recordings:  # then its file is complete
                recording.finish()

    def media_pending(self) -> bool:
        """Whether ended calls' media objects still wait to be destroyed (shutdown waits for them)."""
        return bool(self._dying)

    def after(self, seconds: float, key: int, kind: str) -> None:
        """Run timer ``kind`` for call ``key`` in ``seconds`` (see ``run_timers``)."""
        self._after(seconds, key, kind)

    def _after(self, seconds: float, key: int, kind: str) -> None:
        if seconds > 0:
            heapq.heappush(self._timers, (time.monotonic() + seconds, key, kind))

    def run_timers(self) -> None:
        """Enforce the ring timeout, the maximum duration and the inbound decision deadline."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, key, kind = heapq.heappop(self._timers)
            call = self.calls.get(key)
            if call is None:
                continue
            if kind == "timeout" and call.answered_at is None:
                self.hangup(key, "timeout")  # CANCEL: the far end answers it with 487
            elif kind == "max duration":
                self.hangup(key, "max duration")
            elif kind == "message left":  # the answering machine's message played out (sip/amd_media.py)
                self.hangup(key, MESSAGE_LEFT)
            elif kind == "decision" and not call.decided:
                log.warning("inbound call %d undecided after %.0f s: 503", key, DECISION_SECONDS)
                self.reject(Reject(key, 503, RETRY_AFTER))
