"""The demo's carrier played by pjsua2: one process answering calls by script, behind sip/carrier_front.py.

Run as ``python -m sip.loopback_carrier RTP_PORT RTP_PORTS`` by the front, which tells it what to do with
each call in an ``X-Carrier-Script`` header of the INVITE (the front counts the calls of each class, so
"the first N calls" hold across every carrier process). The scripts are those of
dialer/demo_scenarios/carrier.xml: ``answer`` (ring, answer, talk 2-5 s, hang up), ``busy`` (486),
``ring`` (ring until the CANCEL), ``decline`` (ring, 603), ``refer-accept`` / ``refer-refuse`` (answer,
press 0 as RFC 2833 after 1 s; a REFER is accepted: 202, NOTIFY 100, pjsua dials the human and NOTIFYs
200 once the human answers, then the call waits for the gateway's BYE; or refused with 603, and the
callee talks 2-4 s to the human the gateway bridges in, then hangs up; no REFER in 5 s: talk, hang up)
and ``human`` (answer, stay until BYE). The dialogue after the INVITE goes straight between the peers.

One thread owns pjsua2 (docs/pjsua2.md): the main thread creates the library, polls it, runs the timers
and drops each Call object right after its DISCONNECTED. Timers hold integer keys, never Call objects.
It prints ``ready PORT`` once listening, then ``start CALL-ID`` for each call it places itself and
``end CALL-ID`` for each call that ended, so the front knows how many of its 4 call slots are taken.
End of stdin or SIGTERM: hang up everything, destroy the library, exit.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable

import pjsua2 as pj

from sip.carrier_front import SCRIPT_HEADER

_SCRIPT = re.compile(rf"^{SCRIPT_HEADER}:\s*([\w-]+)", re.MULTILINE | re.IGNORECASE)
POLL_MS = 10
REASON = 'Q.850;cause=16;text="Normal call clearing"'  # what the callee's BYE says, as SIPp's does
LOOP_SECONDS = 0.3  # an accepted REFER's leg to the human is dropped this long after it is answered


class CarrierCall(pj.Call):  # type: ignore[misc]  # pjsua2 has no stubs
    """One call at the carrier; callbacks go to the carrier by the call's integer key."""

    def __init__(self, carrier: Carrier, account: pj.Account, call_id: int, key: int, script: str) -> None:
        super().__init__(account, call_id)
        self.carrier = carrier
        self.key = key
        self.script = script
        self.sip_call_id = ""
        self.confirmed = False
        self.referred = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.carrier.state_changed(self)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        self.carrier.refer(self, prm)


class _Account(pj.Account):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, carrier: Carrier) -> None:
        super().__init__()
        self.carrier = carrier

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.carrier.incoming(self, prm)


class _Endpoint(pj.Endpoint):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, on_rejected: Callable[[str], None]) -> None:
        super().__init__()
        self._on_rejected = on_rejected

    def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        self._on_rejected(str(prm.callId))  # pjsua was full (486): the slot was never taken


class Carrier:
    """Every call of this process and its timers; main thread only."""

    def __init__(self, out: Callable[[str], None], rtp_port: int, rtp_ports: int) -> None:
        self.out = out
        self.rtp_port, self.rtp_ports = rtp_port, rtp_ports
        self.calls: dict[int, CarrierCall] = {}
        self._keys = itertools.count(1)
        self._timers: list[tuple[float, int, int, str]] = []
        self._order = itertools.count()
        self._finished: list[CarrierCall] = []
        self.ep = _Endpoint(lambda call_id: self.out(f"end {call_id}"))
        self.account: _Account | None = None

    # ---- set-up and teardown ---------------------------------------------------------------------

    def start(self) -> int:
        """Create the library on this thread, listen on a free UDP port on loopback; returns it."""
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "demo-carrier"
        cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
        cfg.medConfig.sndAutoCloseTime = -1  # the null device's clock carries RTP and DTMF
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        transport = pj.TransportConfig()
        transport.boundAddress = transport.publicAddress = "127.0.0.1"
        tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():  # G.711 as a carrier offers it
            self.ep.codecSetPriority(codec.codecId, 255 if codec.codecId == "PCMU/8000/1" else 0)
        port = int(self.ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        account = pj.AccountConfig()
        account.idUri = f"sip:carrier@127.0.0.1:{port}"
        account.mediaConfig.lockCodecEnabled = False
        media = pj.TransportConfig()
        media.boundAddress = media.publicAddress = "127.0.0.1"
        media.port, media.portRange = self.rtp_port, self.rtp_ports
        account.mediaConfig.transportConfig = media
        self.account = _Account(self)
        self.account.create(account, True)
        return port

    def pump(self) -> None:
        self.ep.libHandleEvents(POLL_MS)
        self.run_timers()
        self._finished.clear()  # right after DISCONNECTED, before pjsua can reuse the slot

    def shutdown(self) -> None:
        """Hang up every call, wait for their ends (bounded), then destroy the library."""
        self._timers.clear()
        self.ep.hangupAllCalls()
        deadline = time.monotonic() + 3.0
        while self.calls and time.monotonic() < deadline:
            self.pump()
        self.calls.clear()
        self._finished.clear()
        gc.collect()
        if self.account is not None:
            self.account.shutdown()
            self.account = None
        self.ep.libDestroy()

    # ---- pjsua callbacks --------------------------------------------------------------------------

    def incoming(self, account: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        found = _SCRIPT.search(prm.rdata.wholeMsg)
        script = found.group(1).lower() if found else "answer"
        call = CarrierCall(self, account, prm.callId, next(self._keys), script)
        self.calls[call.key] = call
        call.sip_call_id = call.getInfo().callIdString
        self._begin(call)

    def state_changed(self, call: CarrierCall) -> None:
        info = call.getInfo()
        if not call.sip_call_id:  # a call we placed (an accepted REFER's leg to the human)
            call.sip_call_id = info.callIdString
            self.out(f"start {call.sip_call_id}")
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not call.confirmed:
            call.confirmed = True
            self._talk(call)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.calls.pop(call.key, None)
            self._finished.append(call)
            self.out(f"end {call.sip_call_id}")

    def refer(self, call: CarrierCall, prm: pj.OnCallTransferRequestParam) -> None:
        """The gateway hands our callee to the human: accept (pjsua dials the human) or refuse."""
        if call.referred or not call.script.startswith("refer-"):
            prm.statusCode = 603
            return
        call.referred = True
        if call.script == "refer-refuse":
            prm.statusCode = 603
            self._after(random.uniform(2.0, 4.0), call, "bye")  # talk to the bridged human, leave
            return
        assert self.account is not None
        leg = CarrierCall(self, self.account, pj.PJSUA_INVALID_ID, next(self._keys), "to-human")
        self.calls[leg.key] = leg  # pjsua places it; we keep the reference
        prm.newCall = leg

    # ---- scripts ----------------------------------------------------------------------------------

    def _begin(self, call: CarrierCall) -> None:
        """What an offered call gets, per its script (delays as in carrier.xml)."""
        script = call.script
        if script == "busy":
            self._after(random.uniform(0.05, 0.3), call, "486")
            return
        ring = random.uniform(0.1, 0.4) if script == "human" else random.uniform(0.15, 0.9)
        self._after(ring, call, "180")
        if script == "decline":
            self._after(ring + random.uniform(0.5, 1.5), call, "603")
        elif script in ("answer", "human", "refer-accept", "refer-refuse"):
            wait = {"answer": (0.3, 1.2), "human": (0.2, 0.6)}.get(script, (0.3, 0.9))
            self._after(ring + random.uniform(*wait), call, "200")

    def _talk(self, call: CarrierCall) -> None:
        """The call was answered: what the callee does now."""
        if call.script == "answer":
            self._after(random.uniform(2.0, 5.0), call, "bye")
        elif call.script.startswith("refer-"):
            self._after(1.0, call, "press 0")
            self._after(1.0 + 5.0, call, "no refer")
        elif call.script == "to-human":
            self._after(LOOP_SECONDS, call, "drop")  # the NOTIFY 200 is out: the human has the callee

    def _after(self, seconds: float, call: CarrierCall, action: str) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._order), call.key, action))

    def run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, key, action = heapq.heappop(self._timers)
            call = self.calls.get(key)
            if call is not None:
                self._act(call, action)

    def _act(self, call: CarrierCall, action: str) -> None:
        try:
            if action.isdigit() and not call.confirmed:  # a response to the INVITE
                prm = pj.CallOpParam(True)
                prm.statusCode = int(action)
                if prm.statusCode < 300:
                    call.answer(prm)
                else:
                    call.hangup(prm)
            elif action == "press 0":
                call.dialDtmf("0")  # RFC 2833: the events the gateway offered and we answered
            elif action == "no refer":
                if not call.referred:
                    call.referred = True
                    self._after(random.uniform(2.0, 4.0), call, "bye")
            elif action == "bye":
                call.hangup(_with_reason())
            elif action == "drop":
                call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass  # the call ended meanwhile; its DISCONNECTED says so


def _with_reason() -> pj.CallOpParam:
    prm = pj.CallOpParam(True)
    header = pj.SipHeader()
    header.hName, header.hValue = "Reason", REASON
    prm.txOption.headers.append(header)
    return prm


def _until_eof(stop: threading.Event) -> None:
    """Whoever started us is gone once our stdin ends: stop then."""
    while os.read(0, 4096):  # unbuffered: a buffered reader's lock would stall interpreter exit
        pass
    stop.set()


def main() -> None:
    rtp_port, rtp_ports = int(sys.argv[1]), int(sys.argv[2])
    # Lines go to the real stdout; pjsua prints to fd 1 before its log settings apply, so fd 1 → null.
    out_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the demo decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_until_eof, args=(stop,), daemon=True).start()

    def out(line: str) -> None:
        os.write(out_fd, f"{line}\n".encode())

    carrier = Carrier(out, rtp_port, rtp_ports)
    out(f"ready {carrier.start()}")
    while not stop.is_set():
        carrier.pump()
    carrier.shutdown()
    del carrier
    os._exit(0)  # no interpreter teardown: pjsua2 objects must not be finalised after libDestroy


if __name__ == "__main__":
    main()
