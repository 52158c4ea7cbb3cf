"""The pjsua2 Endpoint of one SIP worker: set-up, trunk accounts, capacity probe, clean shutdown."""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import os
import time
import uuid
from collections.abc import Callable

import pjsua2 as pj

from dialer.logs import redact
from sip.calls import PJ_ETOOMANY, Call, CallTable, Emit
from sip.inbound_policy import InboundPolicy
from sip.message import called_user, caller_user
from sip.protocol import AddTrunk, Registration, Rejected, TrunkError, WorkerConfig
from sip.screen import Screen
from sip.sip_worker import WorkerDesk
from sip.stream import StreamHub
from sip.transfers import TransferDesk

log = logging.getLogger(__name__)

# The offer is G.711 only, plus telephone-event at 8 kHz (pjmedia adds one per codec clock rate): the
# wheel's full list (speex x3, iLBC, GSM, G722, L16, telephone-event at 3 rates) makes an INVITE of
# ~1356 bytes, which pjsip would move from UDP to TCP. A trunk that asks for another codec
# (``TrunkConfig.codecs``) gets it enabled below G.711 in its worker's endpoint.
G711 = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}
_ASKED_CODEC_PRIORITY = 128
# pjsip_cfg_t.endpt.disable_tcp_switch: the 5th pj_bool_t of pjsip_sip_cfg_var (pjsip/sip_config.h of
# pjproject 2.15, the version pyproject.toml allows). pjsua2 has no setter for it.
_DISABLE_TCP_SWITCH_INDEX = 4
SESSION_EXPIRES = 600  # s: how long a carrier keeps a call whose session refreshes stopped
MIN_SE = 90  # s: RFC 4028's floor; a peer asking for less gets 422
_PJSUA_LOG_LEVEL = {"DEBUG": 5, "INFO": 2}  # pjsua 1 = errors, 2 = warnings, 5 = every SIP message
BRIDGE_RATE = 8000  # the conference bridge's clock rate (recorder WAVs are at this rate)
WHEEL_IOQUEUE_HANDLES = 64  # PJ_IOQUEUE_MAX_HANDLES of the PyPI wheel (pjproject's default)


def build_media_sockets() -> int:
    """PJ_IOQUEUE_MAX_HANDLES of the pjsua2 in use (how many media sockets one worker may open).

    pjsua2 does not expose it: deploy/build-pjsua2 records its build's limits in a ``pjsua2_build``
    module next to pjsua2; without one this is the PyPI wheel. The call cap itself is probed (``probe``).
    """
    try:
        build = importlib.import_module("pjsua2_build")
    except ImportError:
        return WHEEL_IOQUEUE_HANDLES
    return int(build.IOQUEUE_MAX_HANDLES)


def keep_udp() -> None:
    """Never move a request from UDP to TCP because of its size (RFC 3261 18.1.1 lets pjsip do it past
    ~1300 bytes): a carrier whose trunk is UDP may drop TCP silently, and the call would be lost."""
    try:
        lib = ctypes.CDLL(pj._pjsua2.__file__)
        flags = (ctypes.c_int * (_DISABLE_TCP_SWITCH_INDEX + 1)).in_dll(lib, "pjsip_sip_cfg_var")
    except (AttributeError, OSError, ValueError) as exc:  # a build without the symbol: the small offer
        log.warning("cannot pin requests to UDP (%s); a large INVITE may move to TCP", exc)
        return
    flags[_DISABLE_TCP_SWITCH_INDEX] = 1


class _LogWriter(pj.LogWriter):  # type: ignore[misc]  # pjsua2 has no stubs
    """pjsua's own log lines into Python logging (whose handler masks phone-number-shaped digits)."""

    quiet = False  # set while the capacity probe provokes PJ_ETOOMANY on purpose

    def write(self, entry: pj.LogEntry) -> None:
        if self.quiet:
            return
        level = logging.WARNING if entry.level <= 1 else logging.INFO if entry.level == 2 else logging.DEBUG
        log.log(level, "pjsua: %s", entry.msg.strip())


class _Endpoint(pj.Endpoint):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, on_rejected: Callable[[pj.OnRejectedIncomingCallParam], None]) -> None:
        super().__init__()
        self._on_rejected = on_rejected

    def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        self._on_rejected(prm)


class _Account(pj.Account):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, stack: Stack, trunk: str) -> None:
        super().__init__()
        self.stack = stack
        self.trunk = trunk
        self.accept_refer = False  # the trunk's accept_inbound_refer

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.stack.media_clock(True)
        self.stack.table.incoming(self, prm)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self.stack.emit(Registration(self.trunk, prm.code, prm.expiration if prm.code // 100 == 2 else 0))


class Stack:
    """Everything pjsua2 in one worker; every method runs on the thread that called ``start``."""

    def __init__(self, config: WorkerConfig, emit: Emit, hub: StreamHub | None = None) -> None:
        self.config = config
        self.emit = emit
        self.table = CallTable(emit, config.media_sockets or build_media_sockets(), hub)
        if config.inbound_closed:
            self.table.policy = InboundPolicy(networks=())
        self.accounts: dict[str, _Account] = {}
        self.transfers = TransferDesk(self.table, self.accounts.get)
        self.workers = WorkerDesk(
            self.table, lambda: self.accounts.get(""), f"{self._local_host()}:{config.port}"
        )
        self._writer = _LogWriter()  # must outlive the library
        self.asked_codecs: set[str] = set()  # codec id prefixes trunks asked for, on top of G.711
        # Refuses INVITEs by the table's policy before pjsua makes calls of them; lives as long as we do.
        self.screen = Screen(lambda: self.table.policy, lambda: self.table.probe_user)
        self.ep: _Endpoint  # made in start(), on the SIP thread
        self.clock_on = False  # whether the null sound device (the bridge's clock) is open

    def media_clock(self, on: bool) -> None:
        """Open (``setNullDev``) or close (``setNoDev``) the null sound device, whose clock thread
        drives the conference bridge and so every call's RTP and DTMF out. Closed only while the
        worker has no call at all: its 50 ticks a second were a third of an idle worker's CPU."""
        if on != self.clock_on:
            manager = self.ep.audDevManager()
            manager.setNullDev() if on else manager.setNoDev()
            self.clock_on = on

    # ---- set-up --------------------------------------------------------------------------------

    def start(self) -> None:
        """Create, configure and start the library on the calling thread (the SIP thread)."""
        self.ep = _Endpoint(self._rejected)
        self.ep.libCreate()  # the thread that creates the library is pjsua's "main thread"
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0  # no pjsip worker threads: the SIP thread polls
        cfg.uaConfig.mainThreadOnly = True  # every callback on the SIP thread
        cfg.uaConfig.maxCalls = self.config.max_calls
        cfg.uaConfig.userAgent = "sip-dialer"
        # The writer replaces pjsua's console output and sees what passes consoleLevel.
        cfg.logConfig.level = cfg.logConfig.consoleLevel = _PJSUA_LOG_LEVEL.get(self.config.log_level, 1)
        cfg.logConfig.writer = self._writer
        # pjsua closes an idle sound device (nothing connected to slot 0) after 1 s by default, and the
        # null device's clock drives the conference bridge: calls would stop sending RTP and DTMF.
        cfg.medConfig.sndAutoCloseTime = -1
        cfg.medConfig.noVad = True  # keep RTP flowing through silence: peers time out silent streams
        # The bridge at 8 kHz, the rate of G.711 trunks and of the voice-worker stream ports: at the default
        # 16 kHz every call's stream and every stream port is resampled both ways on each 20 ms tick.
        cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = BRIDGE_RATE
        self.ep.libInit(cfg)
        for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
            self.ep.transportCreate(kind, self._transport(self.config.port))
        if self.config.tls:
            tls = self._transport(self.config.tls_port)
            tls.tlsConfig.certFile = self.config.tls_cert
            tls.tlsConfig.privKeyFile = self.config.tls_key
            self.ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls)
        self.screen.install(pj._pjsua2.__file__)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()  # no sound card; media runs on the bridge clock
        self.clock_on = True
        keep_udp()
        self.enable_codecs(())
        local = f"sip:gateway@{self._local_host()}:{self.config.port}"
        self._create_account("", self._account_config(local))

    def enable_codecs(self, asked: tuple[str, ...]) -> None:
        """G.711 first, then the codecs some trunk asked for (``"G722"``, ``"GSM/8000"``: a prefix of
        pjsua's codec id, case-insensitive); every other codec is disabled (priority 0)."""
        self.asked_codecs |= {name.lower() for name in asked}
        for codec in self.ep.codecEnum2():
            priority = G711.get(codec.codecId, 0)
            if not priority and any(codec.codecId.lower().startswith(a) for a in self.asked_codecs):
                priority = _ASKED_CODEC_PRIORITY
            self.ep.codecSetPriority(codec.codecId, priority)

    def _transport(self, port: int) -> pj.TransportConfig:
        cfg = pj.TransportConfig()
        cfg.port = port
        if self.config.host not in ("", "0.0.0.0"):
            cfg.boundAddress = cfg.publicAddress = self.config.host
        return cfg

    def _local_host(self) -> str:
        return "127.0.0.1" if self.config.host in ("", "0.0.0.0") else self.config.host

    def _account_config(self, id_uri: str) -> pj.AccountConfig:
        cfg = pj.AccountConfig()
        cfg.idUri = id_uri
        cfg.regConfig.registerOnAdd = False
        cfg.mediaConfig.lockCodecEnabled = False  # else a re-INVITE follows multi-codec answers
        # RFC 4028 session timers on every call: a carrier that supports them ends a call whose
        # refreshes stop (a gateway killed without sending BYE) SESSION_EXPIRES s after the last one,
        # instead of keeping an orphaned call up. We refresh at half that (UPDATE or re-INVITE).
        cfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
        cfg.callConfig.timerSessExpiresSec = SESSION_EXPIRES
        cfg.callConfig.timerMinSESec = MIN_SE
        media = self._transport(self.config.rtp_port)
        media.portRange = self.config.rtp_ports
        cfg.mediaConfig.transportConfig = media
        return cfg

    def _create_account(self, trunk: str, cfg: pj.AccountConfig) -> None:
        account = self.accounts.get(trunk)
        if account is None:
            account = _Account(self, trunk)
            account.create(cfg, trunk == "")  # the local account is the default for inbound calls
            self.accounts[trunk] = account
        else:
            account.modify(cfg)

    def add_trunk(self, cmd: AddTrunk) -> None:
        """Create or update the account a trunk's calls go out through."""
        cfg = self._account_config(cmd.id_uri)
        if cmd.registrar:
            cfg.regConfig.registrarUri = cmd.registrar
            cfg.regConfig.timeoutSec = cmd.register_expires
            cfg.regConfig.registerOnAdd = True  # pjsua refreshes it before it expires
        if cmd.username:
            cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", cmd.username, 0, cmd.password))
        if cmd.proxy:
            cfg.sipConfig.proxies.append(cmd.proxy if ";lr" in cmd.proxy else f"{cmd.proxy};lr")
        try:
            self._create_account(cmd.trunk, cfg)
        except pj.Error as exc:
            self.emit(TrunkError(cmd.trunk, redact(exc.reason)))
            return
        self.accounts[cmd.trunk].accept_refer = cmd.accept_refer
        if not {c.lower() for c in cmd.codecs} <= self.asked_codecs:
            self.enable_codecs(cmd.codecs)

    # ---- capacity probe ----------------------------------------------------------------------------

    def probe(self, pump: Callable[[], None]) -> int:
        """How many calls pjsua holds at once, found by calling ourselves until it refuses.

        Each probe call rings its own inbound twin (180, never answered), so both legs hold a slot.
        It ends at PJ_ETOOMANY, or when a twin is refused (odd cap), or at ``max_calls`` or the
        media socket budget, whichever comes first.
        """
        table, account = self.table, self.accounts[""]
        table.probe_user = f"probe-{uuid.uuid4().hex}"
        uri = f"sip:{table.probe_user}@{self._local_host()}:{self.config.port}"
        legs, self._writer.quiet = 0, True
        limit = min(self.config.max_calls, table.media_transports())
        try:
            while legs < limit:
                call = Call(table, account, pj.PJSUA_INVALID_ID, 0, outbound=True)
                try:
                    call.makeCall(uri, pj.CallOpParam(True))
                except pj.Error as exc:
                    if exc.status != PJ_ETOOMANY:
                        raise
                    break
                table.probes.append(call)
                legs += 1
                deadline = time.monotonic() + 2.0
                while call.ringing_at is None and call.ended_code is None and time.monotonic() < deadline:
                    pump()
                if call.ringing_at is None:
                    if call.ended_code is None:
                        raise RuntimeError("capacity probe: no answer from our own SIP port")
                    break  # our leg took the last slot; its twin was refused
                legs += 1
            self._settle(pump)
        finally:
            table.probe_user, self._writer.quiet = None, False
            table.probes.clear()
        return min(legs, limit)

    def _settle(self, pump: Callable[[], None], seconds: float = 3.0) -> None:
        """Hang up everything and pump until every call object has seen DISCONNECTED (bounded)."""
        self.ep.hangupAllCalls()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (
            self.table.calls
            or self.table.media_pending()
            or self.transfers.pending()
            or self.workers.pending()
            or any(call.ended_code is None for call in self.table.probes)
        ):
            pump()

    def _rejected(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        if self.table.probe_user is not None:  # a probe twin refused: that is how the probe ends
            return
        message = prm.rdata.wholeMsg
        self.emit(Rejected(called_user(message), caller_user(message), prm.statusCode, time.time()))

    # ---- shutdown --------------------------------------------------------------------------------

    def shutdown(self, pump: Callable[[], None]) -> None:
        """The clean sequence: hang up, wait for DISCONNECTED, drop calls, close accounts, destroy."""
        self.table.close()
        self._settle(pump)
        self.transfers.clear()  # its human legs' Call objects too
        self.workers.clear()  # and the SIP-URI workers' legs
        self.table.calls.clear()
        self.table.reap()
        gc.collect()  # no Call object may outlive libDestroy
        self.table.ports.disown()
        self.table.amd_ports.disown()
        registered = any(account.getInfo().regIsConfigured for account in self.accounts.values())
        for account in self.accounts.values():
            account.shutdown()
        # pjsua waits a fixed second for un-REGISTERs unless told there is no network work left.
        self.ep.libDestroy(0 if registered else pj.PJSUA_DESTROY_NO_NETWORK)
        log.debug("pjsua destroyed in worker pid %d", os.getpid())
