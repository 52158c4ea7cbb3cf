"""Human transfers on the SIP thread: REFER of a call's far end, a bridged fallback, REFERs from the far end.

A ``Transfer`` runs as a REFER (``refer``), as a second leg to the human joined to the call in pjsua's
conference bridge (``bridge``: no Python per frame), or REFER first and the bridge when the REFER is
refused (a final 4xx-6xx, from the REFER's response or a NOTIFY sipfrag) or no final NOTIFY comes in
``refer_timeout`` (``auto``). pjsua does not end the call after a REFER succeeds: we hang up. A human
leg that fails leaves the call with its voice worker, which is told (``transfer_failed``); a bridged
human leg lives as long as the call, and either leg's end hangs up the other.

The human leg needs a pjsua call slot in this process (the call's audio is joined here): an ``auto`` or
``bridge`` transfer holds a free slot from the moment it is asked, so a call placed while the REFER is
out cannot take it, and the worker's ``transfer_lines`` are slots no call takes (``CallTable``).

A REFER from the far end is refused with 603 unless its trunk accepts them; then pjsua calls the
Refer-To target and, once that leg answers, it takes the call's key and voice-worker stream.

Lifetimes follow docs/pjsua2.md: legs are ``Call`` objects with key 0 (the call table reports
nothing for them) that the desk drops at their DISCONNECTED; timers hold keys, never Call objects.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pjsua2 as pj

from dialer.logs import redact
from sip.calls import Call, CallTable, _op
from sip.protocol import ReferReceived, Transfer, TransferDone, TransferRefused, TransferUpdate

log = logging.getLogger(__name__)

TRANSFERRED = "transferred"  # why we hung up a call whose REFER succeeded
HUMAN_LEFT = "transfer leg ended"  # why we hung up a call bridged to a human who hung up
NO_ANSWER = "no answer"
NO_NOTIFY = "no final NOTIFY"
NO_LINE = "no free line for the human leg"
ORPHAN_SECONDS = 2.0  # a call replaced after an inbound REFER is hung up if its far end has not by then
NO_NOTIFY_CODE = 408

AccountLookup = Callable[[str], pj.Account | None]


class Leg(Call):
    """The human's leg of a bridged transfer, or the Refer-To leg of an accepted inbound REFER."""

    def __init__(self, table: CallTable, account: pj.Account, owner: int) -> None:
        super().__init__(table, account, pj.PJSUA_INVALID_ID, 0, outbound=True)
        self.owner = owner  # the key of the call this leg serves

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        super().onCallState(prm)  # the table's bookkeeping; key 0: it reports nothing
        if self.table.transfers is not None and self.ended_code is None:
            self.table.transfers.leg_changed(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        super().onCallMediaState(prm)
        if self.table.transfers is not None:
            self.table.transfers.leg_changed(self)


@dataclass
class _Transfer:
    key: int
    mode: str
    started_at: float
    cmd: Transfer | None = None  # None: a REFER from the far end
    serial: int = 0
    method: str = "refer"
    leg: Leg | None = None
    rang: bool = False
    bridged: bool = False
    limit: str | None = None
    refusal: tuple[int | None, str] = (None, "")  # a final REFER failure, acted on by the next timer run
    holds_line: bool = False  # a call slot is held for the human leg (see the module docstring)
    fell_back: str = ""  # why the REFER failed before the bridge was tried (for the record)


class TransferDesk:
    """Every transfer of one worker's calls; SIP thread only (commands, pjsua callbacks, timers)."""

    def __init__(self, table: CallTable, accounts: AccountLookup) -> None:
        self.table = table
        self.emit = table.emit
        self._accounts = accounts
        self.active: dict[int, _Transfer] = {}
        self._serials = itertools.count(1)
        self._timers: list[tuple[float, int, int, str]] = []  # (when, serial, key, kind)
        self._orphans: dict[int, Call] = {}  # calls replaced after an inbound REFER, by serial
        table.transfers = self

    # ---- commands ----------------------------------------------------------------------------

    def start(self, cmd: Transfer) -> None:
        call = self.table.calls.get(cmd.key)
        if cmd.key in self.active:
            log.warning("call %d: a transfer is already under way", cmd.key)
            return
        state = _Transfer(cmd.key, cmd.mode, time.time(), cmd, next(self._serials))
        # Hold the human leg's slot now, before anything is sent, if the transfer may need one.
        left = self.table.lines_left()
        state.holds_line = cmd.mode in ("auto", "bridge") and (left is None or left > 0)
        self.active[cmd.key] = state
        if call is None or call.answered_at is None:
            self._fail(state, None, "the call is not answered")
        elif cmd.mode == "bridge":
            self._bridge(call, state)
        else:
            self._refer(call, state)

    def refused(self, cmd: TransferRefused) -> None:
        """The gateway refused the transfer the call's voice worker asked for: tell the worker."""
        call = self.table.calls.get(cmd.key)
        if call is not None:
            call.media.transfer_failed(None, redact(cmd.reason))

    def _refer(self, call: Call, state: _Transfer) -> None:
        assert state.cmd is not None
        state.method = "refer"
        self._after(state.cmd.refer_timeout, state, "refer")
        try:
            call.xfer(state.cmd.refer_uri, pj.CallOpParam(True))
        except pj.Error as exc:
            self._refer_failed(state, None, redact(exc.reason))

    def _refer_failed(self, state: _Transfer, code: int | None, reason: str) -> None:
        call = self.table.calls.get(state.key)
        if state.mode == "auto" and call is not None:
            log.info("call %d: REFER failed (%s %s): bridging instead", state.key, code, reason)
            state.fell_back = f"REFER {code or 'error'} {reason}".strip()
            self._bridge(call, state)
        else:
            self._fail(state, code, reason)

    def _bridge(self, call: Call, state: _Transfer) -> None:
        cmd = state.cmd
        assert cmd is not None
        state.method = "bridge"
        account = self._accounts(cmd.trunk)
        if account is None:
            self._fail(state, None, "unknown trunk")
            return
        if self.table.room() > 0 or not self._slot_free(state):
            self._fail(state, None, NO_LINE)
            return
        leg = Leg(self.table, account, call.key)
        prm = _op(headers=cmd.headers)
        prm.txOption.localUri = cmd.from_uri
        state.leg = leg  # callbacks may already run inside makeCall
        try:
            leg.makeCall(cmd.bridge_uri, prm)
        except pj.Error as exc:
            state.leg = None
            self._fail(state, None, redact(exc.reason))
            return
        self._after(cmd.ring_timeout, state, "ring")

    # ---- pjsua callbacks -----------------------------------------------------------------------

    def refer_status(self, call: Call, prm: pj.OnCallTransferStatusParam) -> None:
        """Progress of our REFER: its response (100 "Accepted" for a 202) and each NOTIFY sipfrag."""
        code, reason = int(prm.statusCode), str(prm.reason)
        final = bool(prm.finalNotify) or code >= 200
        if final:
            prm.cont = False  # no more NOTIFYs wanted
        state = self.active.get(call.key)
        if state is None or state.method != "refer" or state.cmd is None:
            return  # late news of a REFER we gave up on
        self.emit(TransferUpdate(call.key, "refer", code, reason, final, time.time()))
        if not final:
            return
        if 200 <= code < 300:
            call.transferred = True
            del self.active[call.key]
            self._finish(state, "completed", code, reason)
            self._after(0, state, "hangup")  # not from inside the callback of the same call
        else:
            self._after(0, state, "refused", code, reason)

    def refer_request(self, call: Call, prm: pj.OnCallTransferRequestParam) -> None:
        """A REFER from the far end: 603 unless the trunk accepts them and the call is free to move."""
        accepted = (
            bool(getattr(call.trunk_account, "accept_refer", False))
            and self.table.calls.get(call.key) is call
            and call.key not in self.active
        )
        self.emit(ReferReceived(call.key, accepted, time.time()))
        if not accepted:
            prm.statusCode = 603
            return
        state = _Transfer(call.key, "inbound", time.time(), None, next(self._serials), "inbound_refer")
        state.leg = Leg(self.table, call.trunk_account, call.key)
        prm.newCall = state.leg  # pjsua places it; we keep the reference
        self.active[call.key] = state

    def leg_changed(self, leg: Leg) -> None:
        """A leg's state or media changed: report its ringing, join it once answered with audio."""
        state = self.active.get(leg.owner)
        if state is None or state.leg is not leg:
            return
        if leg.ringing_at is not None and not state.rang and state.cmd is not None:
            state.rang = True
            self.emit(TransferUpdate(state.key, "bridge", 180, "Ringing", False, time.time()))
        call = self.table.calls.get(state.key)
        if leg.answered_at is None or state.bridged or call is None:
            return
        if state.cmd is None:
            self._replace(call, leg, state)  # the port follows the leg's audio once it is active
            return
        if leg.media.audio is None or call.media.audio is None:
            return
        call.media.hand_over()  # the voice worker gets ``stop``: the human has the call now
        call.media.audio.startTransmit(leg.media.audio)
        leg.media.audio.startTransmit(call.media.audio)
        state.bridged = call.transferred = True
        self.emit(TransferUpdate(state.key, "bridge", 200, "OK", True, time.time()))
        self._finish(state, "bridged", 200, "OK")

    def call_ended(self, call: Call) -> None:
        """Any call or leg reached DISCONNECTED (from the call table)."""
        for serial, orphan in list(self._orphans.items()):
            if orphan is call:
                del self._orphans[serial]
        if isinstance(call, Leg):
            state = self.active.get(call.owner)
            if state is None or state.leg is not call:
                return
            state.leg = None
            if state.bridged:
                del self.active[call.owner]
                self.table.hangup(call.owner, HUMAN_LEFT)
            else:
                code = call.ended_code
                self._fail(state, code, state.limit or _reason(code))
            return
        state = self.active.pop(call.key, None) if call.key else None
        if state is not None and state.leg is not None:
            leg, state.leg = state.leg, None
            self._hangup(leg)

    # ---- housekeeping --------------------------------------------------------------------------

    def _after(
        self, seconds: float, state: _Transfer, kind: str, code: int | None = None, why: str = ""
    ) -> None:
        if kind == "refused":
            state.refusal = (code, why)
        heapq.heappush(self._timers, (time.monotonic() + seconds, state.serial, state.key, kind))

    def run_timers(self) -> None:
        """The REFER's NOTIFY deadline, the human leg's ring timeout, deferred hang-ups."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, serial, key, kind = heapq.heappop(self._timers)
            if kind == "orphan":
                orphan = self._orphans.pop(serial, None)
                if orphan is not None:
                    self._hangup(orphan)
                continue
            if kind == "hangup":
                self.table.hangup(key, TRANSFERRED)
                continue
            state = self.active.get(key)
            if state is None or state.serial != serial:
                continue
            if kind == "refused" and state.method == "refer":
                self._refer_failed(state, *state.refusal)
            elif kind == "refer" and state.method == "refer":
                self.emit(TransferUpdate(key, "refer", NO_NOTIFY_CODE, NO_NOTIFY, True, time.time()))
                self._refer_failed(state, NO_NOTIFY_CODE, NO_NOTIFY)
            elif kind == "ring" and state.leg is not None and not state.bridged:
                state.limit = NO_ANSWER
                self._hangup(state.leg)  # CANCEL; its DISCONNECTED fails the transfer

    def _slot_free(self, state: _Transfer) -> bool:
        """Whether pjsua has a call slot for this transfer's leg (else makeCall fails with PJ_ETOOMANY
        and pjsua logs it): the one it holds, or one still free; unknown before the capacity probe,
        when pjsua alone decides."""
        left = self.table.lines_left()  # other transfers' legs and held slots are counted in it
        return state.holds_line or left is None or left > 0

    def held(self) -> int:
        """Call slots transfers hold: human legs (placed or held for), and calls an inbound REFER
        replaced that are not yet hung up."""
        holding = sum(1 for state in self.active.values() if state.leg is not None or state.holds_line)
        return holding + len(self._orphans)

    def pending(self) -> bool:
        """Whether a leg is still up (shutdown waits for its DISCONNECTED)."""
        return any(state.leg is not None for state in self.active.values()) or bool(self._orphans)

    def clear(self) -> None:
        """Drop every leg reference (shutdown, before libDestroy)."""
        self.active.clear()
        self._orphans.clear()
        self._timers.clear()

    # ---- helpers --------------------------------------------------------------------------------

    def _replace(self, call: Call, leg: Leg, state: _Transfer) -> None:
        """An accepted inbound REFER's leg answered: it becomes the call (key, stream, timers)."""
        old, new = call.media, leg.media
        port = old.port
        if port is not None and old.audio is not None and new.audio is not None:
            old.audio.stopTransmit(port)
            port.stopTransmit(old.audio)
            new.audio.startTransmit(port)
            port.startTransmit(new.audio)
        new.port, new.session, new.stream, new.answered, new.key = (
            old.port,
            old.session,
            old.stream,
            True,
            call.key,
        )
        old.port, old.session, old.stream = None, None, None
        leg.key, call.key = call.key, 0
        leg.started_at, leg.ringing_at, leg.answered_at = call.started_at, call.ringing_at, call.answered_at
        leg.max_duration, leg.outbound, leg.decided = call.max_duration, call.outbound, True
        self.table.calls[leg.key] = leg
        del self.active[leg.key]
        self._orphans[state.serial] = call
        self._after(ORPHAN_SECONDS, state, "orphan")
        self._finish(state, "completed", 200, "OK")

    def _fail(self, state: _Transfer, code: int | None, reason: str) -> None:
        self.active.pop(state.key, None)
        if state.leg is not None:
            leg, state.leg = state.leg, None
            self._hangup(leg)
        call = self.table.calls.get(state.key)
        if call is not None and state.cmd is not None:
            call.media.transfer_failed(code, reason)
        if state.fell_back:
            reason = f"{state.fell_back}; bridge: {reason}"
        self._finish(state, "failed", code, reason)

    def _finish(self, state: _Transfer, result: str, code: int | None, reason: str) -> None:
        log.info("call %d: transfer %s by %s (%s)", state.key, result, state.method, code)
        self.emit(
            TransferDone(state.key, state.method, result, code, redact(reason), state.started_at, time.time())
        )

    def _hangup(self, call: Call) -> None:
        try:
            call.hangup(_op())
        except pj.Error as exc:  # it ended meanwhile; its DISCONNECTED reports it
            log.debug("transfer leg: %s", redact(exc.reason))


def _reason(code: int | None) -> str:
    if code in (486, 600):
        return "busy"
    if code in (408, 480, 487):
        return NO_ANSWER
    return f"human leg ended ({code})"
