"""The inbound screen of one SIP worker: refuse INVITEs from non-trunk sources (403) and for numbers
nobody imported (404) before pjsua makes a call of them.

Why before: pjsua opens a call's RTP and RTCP sockets as soon as it accepts an INVITE, before
``onIncomingCall``. The PyPI wheel's media ioqueue holds 64 sockets and a closed socket's handle
comes back only 500 ms later, so a flood of INVITEs that each became a call (even one refused at
once) aborted the worker (``pj_ioqueue_register_sock2: Assertion !pj_list_empty(free_list)``).

pjsua2 has no API for a pjsip module, so this registers one through ctypes, at priority
``PJSIP_MOD_PRIORITY_APPLICATION - 1``: after the transaction and dialog layers (retransmissions
and in-dialog requests never reach it), before pjsua's own module. It reads the raw message and the
source address out of ``pjsip_rx_data`` by a layout written down below (pjproject 2.15); the first
request it sees checks that layout, and a mismatch switches the screen off (the same policy then
runs in ``onIncomingCall``, where refusals still cost a call, see sip/calls.py).
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sip.inbound_policy import InboundPolicy
from sip.message import called_user, header_values

log = logging.getLogger(__name__)

_PRIORITY = 64 - 1  # PJSIP_MOD_PRIORITY_APPLICATION (pjsua's module) - 1
_MAX_PKT_LEN = 4000  # PJSIP_MAX_PKT_LEN (sip_config.h); deploy/build-pjsua2 keeps the default
_INET6_ADDRSTRLEN = 46


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


_OnRx = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _Module(ctypes.Structure):
    """pjsip_module (sip_module.h)."""

    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        ("load", ctypes.c_void_p),
        ("start", ctypes.c_void_p),
        ("stop", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("on_rx_request", _OnRx),
        ("on_rx_response", ctypes.c_void_p),
        ("on_tx_request", ctypes.c_void_p),
        ("on_tx_response", ctypes.c_void_p),
        ("on_tsx_state", ctypes.c_void_p),
    ]


class _PktInfo(ctypes.Structure):
    _fields_ = [
        ("sec", ctypes.c_long),  # pj_time_val timestamp
        ("msec", ctypes.c_long),
        ("packet", ctypes.c_char * _MAX_PKT_LEN),
        ("zero", ctypes.c_uint32),
        ("len", ctypes.c_ssize_t),
        ("src_addr", ctypes.c_uint32 * 7),  # pj_sockaddr: 28 bytes, 4-byte aligned
        ("src_addr_len", ctypes.c_int),
        ("src_name", ctypes.c_char * _INET6_ADDRSTRLEN),
        ("src_port", ctypes.c_int),
    ]


class _MsgInfo(ctypes.Structure):
    _fields_ = [("msg_buf", ctypes.c_void_p), ("len", ctypes.c_int)]


class _RxData(ctypes.Structure):
    """The head of pjsip_rx_data (sip_transport.h): tp_info, pkt_info, the start of msg_info."""

    _fields_ = [
        ("pool", ctypes.c_void_p),
        ("transport", ctypes.c_void_p),
        ("tp_data", ctypes.c_void_p),
        ("op_key", ctypes.c_void_p * 34),  # pj_ioqueue_op_key_t: internal__[32], activesock_data, user_data
        ("op_key_rdata", ctypes.c_void_p),
        ("pkt", _PktInfo),
        ("msg", _MsgInfo),
    ]


_PACKET = _RxData.pkt.offset + _PktInfo.packet.offset
_SRC_NAME = _RxData.pkt.offset + _PktInfo.src_name.offset


@dataclass(frozen=True)
class Incoming:
    """What the screen read of a request: its text and where it came from."""

    message: str
    source: str


def read(rdata: int) -> Incoming | None:
    """The message and source address of a received request, or None when the memory does not look
    like the layout above (then the caller stops reading)."""
    rx = _RxData.from_address(rdata)
    start, length = rx.msg.msg_buf, rx.msg.len
    if (
        not start
        or not (rdata + _PACKET <= start < rdata + _PACKET + _MAX_PKT_LEN)
        or not 0 < length <= _MAX_PKT_LEN
    ):
        return None
    source = (
        ctypes.string_at(rdata + _SRC_NAME, _INET6_ADDRSTRLEN).split(b"\0", 1)[0].decode("ascii", "replace")
    )
    try:
        ipaddress.ip_address(source)
    except ValueError:
        return None
    return Incoming(ctypes.string_at(start, length).decode("utf-8", "replace"), source)


def new_invite(message: str) -> bool:
    """An INVITE that starts a dialog (its To has no tag)."""
    if not message.startswith("INVITE "):
        return False
    to = header_values(message, "to")
    return not (to and ";tag=" in to[0].replace(" ", "").lower())


class Screen:
    """The pjsip module; one per worker, registered on the SIP thread after ``libInit``.

    ``policy`` decides; ``exempt`` names a called user that always passes (the capacity probe's).
    ``refused`` counts refusals by reason until the worker reports them (``drain``).
    """

    def __init__(self, policy: Callable[[], InboundPolicy], exempt: Callable[[], str | None]) -> None:
        self._policy = policy
        self._exempt = exempt
        self.refused: Counter[str] = Counter()
        self.active = False
        self._lib: ctypes.CDLL | None = None
        self._endpt: int | None = None
        self._callback = _OnRx(self._on_rx_request)  # kept: pjsip holds a raw pointer to it
        self._module = _Module()
        self._name = b"mod-dialer-screen"

    def install(self, library_path: str) -> bool:
        """Register the module with pjsip; False (and the screen off) when this build cannot."""
        try:
            lib = ctypes.CDLL(library_path)
            lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
            lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            ptr = ctypes.c_void_p  # endpoint, rdata, code, reason, headers, body
            lib.pjsip_endpt_respond_stateless.argtypes = [ptr, ptr, ctypes.c_int, ptr, ptr, ptr]
            endpt = lib.pjsua_get_pjsip_endpt()
        except (AttributeError, OSError) as exc:
            log.error("inbound screen unavailable (%s): refusals go through pjsua calls", exc)
            return False
        module = self._module
        module.name = _PjStr(self._name, len(self._name))
        module.id = -1
        module.priority = _PRIORITY
        module.on_rx_request = self._callback
        status = lib.pjsip_endpt_register_module(endpt, ctypes.byref(module))
        if status != 0:
            log.error("inbound screen not registered (pjsip status %d)", status)
            return False
        self._lib, self._endpt, self.active = lib, endpt, True
        return True

    def drain(self) -> dict[str, int]:
        """Refusals counted since the last drain, by reason."""
        counts = dict(self.refused)
        self.refused.clear()
        return counts

    def _on_rx_request(self, rdata: int | None) -> int:
        if not self.active or not rdata:
            return 0
        try:
            return self._screen(rdata)
        except Exception:  # never let a bug here take the worker down: pjsua decides instead
            log.exception("inbound screen failed; passing the request on")
            return 0

    def _screen(self, rdata: int) -> int:
        incoming = read(rdata)
        if incoming is None:
            self.active = False
            log.error("inbound screen off: pjsip_rx_data is not laid out as pjproject 2.15's")
            return 0
        if not new_invite(incoming.message):
            return 0
        called = called_user(incoming.message)
        if called is not None and called == self._exempt():
            return 0
        verdict = self._policy().verdict(incoming.source, called)
        if verdict is None:
            return 0
        assert self._lib is not None
        self._lib.pjsip_endpt_respond_stateless(self._endpt, rdata, verdict.code, None, None, None)
        self.refused[verdict.reason] += 1
        return 1
