"""SIP-URI voice workers on the SIP thread: a second leg to the agent's ``sip:`` URI, bridged to the call.

When a call whose agent's worker is a SIP URI is answered, ``WorkerDesk`` places a leg to that URI,
straight to its host:port (the worker process's local account: no trunk, no proxy), From the DID
(outbound) or the called number (inbound), with the call's ids as X- headers. Once the leg is answered
and both legs have audio they are joined in pjsua's conference bridge (no Python per frame); DTMF is
relayed both ways.

- The leg refused, unanswered in time or ended by the worker: the call is hung up at once with why
  (as the WebSocket bridge does for a lost worker). The call ends: the leg gets BYE (or CANCEL).
- A REFER on the leg asks for a transfer of the callee to the Refer-To user (``TransferAsked``, mode
  ``auto``: the gateway's transfer machinery, REFER on the callee leg with the bridged fallback).
  pjsua accepts a REFER only by dialling the Refer-To itself, so the worker's REFER is answered 603 and
  the gateway transfers the callee; the leg gets BYE once the callee is with the human, and stays
  joined when the transfer fails. A worker that leaves after its REFER does not end the call while
  the transfer runs.
- Such a call holds two pjsua call slots. ``reserved`` counts the second one from dial/answer on, and
  the call table takes no call whose worker leg it could not place (see ``CallTable.lines_left``).

Lifetimes follow docs/pjsua2.md: legs are ``Call`` objects with key 0 (the call table reports nothing
for them), kept until their DISCONNECTED; timers hold keys, never Call objects.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pjsua2 as pj

from dialer.logs import redact
from sip.calls import NO_WORKER_LINE, PJ_ETOOMANY, Call, CallTable, _op
from sip.message import uri_user
from sip.protocol import HangupAsked, StreamJoined, StreamSpec, TransferAsked
from sip.stream import WORKER_HANGUP, WORKER_UNREACHABLE

log = logging.getLogger(__name__)

ANSWER_SECONDS = 1.5  # no response at all by then: unreachable (the call is hung up within 2 s)
RING_SECONDS = 5.0  # a worker that sent a provisional response must answer by then
REFER_ANSWER = 603  # to the worker's REFER: pjsua cannot accept one without dialling it itself
REFER_GRACE_SECONDS = 2.0  # a worker gone after its REFER: the transfer must be under way by then
CHECK_SECONDS = 0.25  # how often such a call is looked at while its transfer runs
TRANSFER_MODE = "auto"

# customParameters → X- headers of the leg's INVITE (the WebSocket ``start`` carries the same).
_HEADERS = {
    "direction": "X-Direction",
    "campaign_id": "X-Campaign-Id",
    "prospect_id": "X-Prospect-Id",
    "attempt_id": "X-Attempt-Id",
    "attempt_number": "X-Attempt-Number",
    "agent_id": "X-Agent-Id",
    "number_id": "X-Number-Id",
    "from": "X-From",
    "to": "X-To",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9+._:@-]")  # header values and URI users carry nothing else


def worker_headers(spec: StreamSpec) -> dict[str, str]:
    """The X- headers of a worker leg's INVITE: the call's ids, direction and numbers."""
    headers = {"X-Call-Id": _UNSAFE.sub("", spec.call_sid), "X-Tenant-Id": _UNSAFE.sub("", spec.account_sid)}
    for key, name in _HEADERS.items():
        value = _UNSAFE.sub("", spec.parameters.get(key, ""))
        if value:
            headers[name] = value
    prospect = spec.parameters.get("prospect_name")
    if prospect:
        headers["X-Prospect-Name"] = quote(prospect, safe="")  # any text, percent-encoded
    return headers


def caller_uri(spec: StreamSpec, local: str) -> str:
    """The leg's From: the number the far end knows us by (the DID out, the called number in)."""
    number = spec.parameters.get("to" if spec.parameters.get("direction") == "inbound" else "from", "")
    user = _UNSAFE.sub("", number).split("@")[0] or "gateway"
    return f"sip:{user}@{local}"


class WorkerLeg(Call):
    """The leg to a SIP-URI voice worker, serving the call with key ``owner``."""

    def __init__(self, desk: WorkerDesk, account: pj.Account, owner: int) -> None:
        super().__init__(desk.table, account, pj.PJSUA_INVALID_ID, 0, outbound=True)
        self.desk = desk
        self.owner = owner
        self.heard = False  # a provisional response came: the worker is there, answering

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        super().onCallState(prm)  # the table's bookkeeping; key 0: it reports nothing
        self.desk.leg_changed(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        super().onCallMediaState(prm)
        self.desk.leg_changed(self)

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        if prm.e.type == pj.PJSIP_EVENT_TSX_STATE and 100 <= prm.e.body.tsxState.tsx.statusCode < 200:
            self.heard = True

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.desk.relay_dtmf(self.owner, prm.digit, to_callee=True)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        self.desk.refer(self, prm)


@dataclass
class _Worker:
    key: int
    spec: StreamSpec
    serial: int
    leg: WorkerLeg | None = None
    answered_at: float | None = None  # the call's answer (epoch), for StreamJoined
    placed_at: float = 0.0  # monotonic: the leg's INVITE left
    joined: bool = False
    told: bool = False  # StreamJoined sent
    referred: bool = False  # the worker REFERred the callee: its leaving no longer ends the call
    gone_at: float = 0.0  # monotonic: the leg ended after the REFER


class WorkerDesk:
    """The worker legs of one SIP worker's calls; SIP thread only (commands, pjsua callbacks, timers)."""

    def __init__(self, table: CallTable, account: Callable[[], pj.Account | None], local: str) -> None:
        self.table = table
        self.emit = table.emit
        self._account = account  # the local account: no trunk, no proxy
        self._local = local  # host:port of our SIP transport, for the leg's From
        self.active: dict[int, _Worker] = {}  # by the call's key, from dial/answer to its end
        self._leaving: dict[int, WorkerLeg] = {}  # legs hung up, kept until their DISCONNECTED
        self._serials = itertools.count(1)
        self._timers: list[tuple[float, int, int, str]] = []  # (when, serial, key, kind)
        table.workers = self

    # ---- the call's side (from the call table) --------------------------------------------------

    def reserved(self) -> int:
        """Calls holding (or about to hold) a second call slot for their worker leg."""
        return len(self.active)

    def reserve(self, call: Call, spec: StreamSpec) -> None:
        """Call ``call`` goes to the SIP worker ``spec.url`` once answered."""
        self.active[call.key] = _Worker(call.key, spec, next(self._serials))
        call.media.on_hand_over = functools.partial(self.release, call.key)

    def unreserve(self, key: int) -> None:
        """The call was not placed after all."""
        self.active.pop(key, None)

    def answered(self, call: Call) -> None:
        """The call reached CONFIRMED: place its worker leg."""
        state = self.active.get(call.key)
        if state is None or state.leg is not None or state.answered_at is not None:
            return
        state.answered_at = call.answered_at
        account = self._account()
        if account is None:
            self._lost(state, f"{WORKER_UNREACHABLE}: no local account")
            return
        leg = WorkerLeg(self, account, call.key)
        prm = _op(headers=worker_headers(state.spec))
        prm.txOption.localUri = caller_uri(state.spec, self._local)
        state.leg = leg  # callbacks may already run inside makeCall
        state.placed_at = time.monotonic()
        try:
            leg.makeCall(state.spec.url, prm)
        except pj.Error as exc:
            state.leg = None
            why = NO_WORKER_LINE if exc.status == PJ_ETOOMANY else redact(exc.reason)
            self._lost(state, f"{WORKER_UNREACHABLE}: {why}")
            return
        self._after(ANSWER_SECONDS, state, "answer")

    def media_changed(self, call: Call) -> None:
        """The call's audio changed (a re-INVITE): join the new stream to the worker's."""
        state = self.active.get(call.key)
        if state is not None and state.joined:
            self._join(state)

    def call_ended(self, call: Call) -> None:
        """The call reached DISCONNECTED (before its ``Ended``): the worker's leg goes too."""
        state = self.active.pop(call.key, None)
        if state is None:
            return
        self._tell(state, None, ended=True)
        if state.leg is not None:
            leg, state.leg = state.leg, None
            self._hangup(leg)

    def release(self, key: int) -> None:
        """The callee is now with a human (a bridged transfer): the worker's leg is done."""
        state = self.active.pop(key, None)
        if state is None or state.leg is None:
            return
        leg, state.leg = state.leg, None
        call = self.table.calls.get(key)
        if call is not None and call.media.audio is not None and leg.media.audio is not None:
            self._safely(lambda: _disconnect(call.media.audio, leg.media.audio))
        log.info("call %d: transferred: the SIP worker's leg is hung up", key)
        self._hangup(leg)

    def relay_dtmf(self, key: int, digit: str, to_callee: bool) -> None:
        """RFC 2833 digits between the call and its worker (never logged: they can be personal data)."""
        state = self.active.get(key)
        call = self.table.calls.get(key)
        if state is None or state.leg is None or call is None or not state.joined:
            return
        target = call if to_callee else state.leg
        self._safely(lambda: target.dialDtmf(digit))

    # ---- the leg's side (pjsua callbacks) --------------------------------------------------------

    def leg_changed(self, leg: WorkerLeg) -> None:
        """A leg's state or media changed: join it once answered with audio; act on its end."""
        if leg.ended_code is not None:
            self._leaving.pop(id(leg), None)
        state = self.active.get(leg.owner)
        if state is None or state.leg is not leg:
            return
        if leg.ended_code is not None:
            self._leg_ended(state, leg)
        elif leg.answered_at is not None:
            self._join(state)

    def refer(self, leg: WorkerLeg, prm: pj.OnCallTransferRequestParam) -> None:
        """The worker REFERred the callee: refuse the REFER itself, ask the gateway for the transfer."""
        prm.statusCode = REFER_ANSWER
        state = self.active.get(leg.owner)
        call = self.table.calls.get(leg.owner)
        target = uri_user(str(prm.dstUri)) or ""
        if state is None or state.leg is not leg or call is None or call.answered_at is None or not target:
            log.warning(
                "call %d: a REFER from its SIP worker was ignored (no call, or no Refer-To user)", leg.owner
            )
            return
        state.referred = True
        log.info("call %d: its SIP worker REFERred the callee: transfer asked", leg.owner)
        self.emit(TransferAsked(leg.owner, target, TRANSFER_MODE, time.time()))

    # ---- housekeeping ----------------------------------------------------------------------------

    def run_timers(self) -> None:
        """The leg's answer deadline; a call whose worker left after its REFER."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, serial, key, kind = heapq.heappop(self._timers)
            state = self.active.get(key)
            if state is None or state.serial != serial:
                continue
            if kind == "answer":
                self._answer_due(state, now)
            elif kind == "referred":
                self._referred_due(state, now)

    def pending(self) -> bool:
        """Whether a leg is still up (shutdown waits for its DISCONNECTED)."""
        return bool(self._leaving) or any(state.leg is not None for state in self.active.values())

    def clear(self) -> None:
        """Drop every leg reference (shutdown, before libDestroy)."""
        self.active.clear()
        self._leaving.clear()
        self._timers.clear()

    # ---- helpers -----------------------------------------------------------------------------------

    def _join(self, state: _Worker) -> None:
        call, leg = self.table.calls.get(state.key), state.leg
        if call is None or leg is None or leg.answered_at is None:
            return
        mine, theirs = call.media.audio, leg.media.audio
        if mine is None or theirs is None:
            return
        recording = call.media.recording
        if recording is not None:  # two recorders on the bridge, one per leg (sip/recorder.py)
            self._safely(lambda: recording.bridge(mine, theirs, _recorder))
        if not self._safely(lambda: _connect(mine, theirs)) or state.joined:
            return
        state.joined = True
        self._tell(state, time.time())
        took = (time.monotonic() - state.placed_at) * 1000
        log.info("call %d: joined to its SIP worker (leg set up in %.1f ms)", state.key, took)

    def _leg_ended(self, state: _Worker, leg: WorkerLeg) -> None:
        state.leg = None
        if self.table.closing:
            return
        if leg.answered_at is None:
            try:
                reason = redact(leg.getInfo().lastReason)
            except pj.Error:
                reason = ""
            self._lost(state, f"{WORKER_UNREACHABLE}: SIP {leg.ended_code} {reason}".strip())
        elif state.referred:
            state.gone_at = time.monotonic()  # the transfer may still be under way
            self._after(CHECK_SECONDS, state, "referred")
        else:
            self.active.pop(state.key, None)
            log.info("call %d: its SIP worker hung up", state.key)
            self.emit(HangupAsked(state.key, None, time.time()))
            self.table.hangup(state.key, WORKER_HANGUP)

    def _answer_due(self, state: _Worker, now: float) -> None:
        leg = state.leg
        if leg is None or leg.answered_at is not None:
            return
        waited = now - state.placed_at
        if (leg.heard or leg.ringing_at is not None) and waited < RING_SECONDS:
            heapq.heappush(self._timers, (state.placed_at + RING_SECONDS, state.serial, state.key, "answer"))
            return
        self._lost(state, f"{WORKER_UNREACHABLE}: no answer in {waited:.1f} s")

    def _referred_due(self, state: _Worker, now: float) -> None:
        call = self.table.calls.get(state.key)
        transfers = self.table.transfers
        if call is None or call.transferred:
            return  # the callee left, or is with the human: nothing to do
        if (
            transfers is not None and state.key in transfers.active
        ) or now - state.gone_at < REFER_GRACE_SECONDS:
            self._after(CHECK_SECONDS, state, "referred")
            return
        self.active.pop(state.key, None)
        log.info("call %d: its SIP worker left and no transfer is under way: hanging up", state.key)
        self.table.hangup(state.key, WORKER_HANGUP)

    def _lost(self, state: _Worker, why: str) -> None:
        """No worker for the call: hang it up now, with why (no dead air)."""
        self.active.pop(state.key, None)
        self._tell(state, None)
        if state.leg is not None:
            leg, state.leg = state.leg, None
            self._hangup(leg)
        log.warning("call %d: %s", state.key, why)
        self.table.hangup(state.key, why)

    def _tell(self, state: _Worker, connected_at: float | None, ended: bool = False) -> None:
        """StreamJoined once per answered call: when the worker took it, or None (abandonment);
        ``ended``: the call ended before the worker's leg was joined (the callee hung up first)."""
        if state.told or state.answered_at is None:
            return
        state.told = True
        self.emit(StreamJoined(state.key, state.answered_at, connected_at, time.time(), ended))

    def _after(self, seconds: float, state: _Worker, kind: str) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, state.serial, state.key, kind))

    def _hangup(self, leg: WorkerLeg) -> None:
        self._leaving[id(leg)] = leg  # its DISCONNECTED drops it
        self._safely(lambda: leg.hangup(_op()))

    @staticmethod
    def _safely(action: Callable[[], None]) -> bool:
        try:
            action()
        except pj.Error as exc:  # a leg or call ended meanwhile; its DISCONNECTED reports it
            log.debug("SIP worker leg: %s", redact(exc.reason))
            return False
        return True


def _recorder(path: str) -> pj.AudioMediaRecorder:
    """A conference-bridge port writing what is sent to it to a mono WAV at the bridge's rate."""
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(path)
    return recorder


def _connect(a: pj.AudioMedia, b: pj.AudioMedia) -> None:
    a.startTransmit(b)  # connecting ports already connected is a no-op in the conference bridge
    b.startTransmit(a)


def _disconnect(a: pj.AudioMedia, b: pj.AudioMedia) -> None:
    a.stopTransmit(b)
    b.stopTransmit(a)
