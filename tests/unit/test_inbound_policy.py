"""The inbound policy the SIP workers screen INVITEs by, and the readers around it (pure)."""

from __future__ import annotations

import ctypes

import pytest

from dialer.inbound_access import uri_host
from sip import screen
from sip.inbound_policy import SOURCE, UNKNOWN_NUMBER, InboundPolicy
from sip.screen import new_invite

POLICY = InboundPolicy.build(["127.0.0.1", "203.0.113.0/28", "2001:db8::/32"], ["+442079460150"])


@pytest.mark.parametrize(
    ("source", "called", "verdict"),
    [
        ("127.0.0.1", "+442079460150", None),
        ("127.0.0.1", "442079460150", None),  # without the "+", as many trunks send it
        ("203.0.113.15", "442079460150", None),
        ("2001:db8::7", "+442079460150", None),
        ("::ffff:127.0.0.1", "+442079460150", None),  # an IPv4 peer on a dual-stack socket
        ("203.0.113.16", "+442079460150", SOURCE),
        ("127.0.0.2", "+442079460150", SOURCE),
        ("not-an-address", "+442079460150", SOURCE),
        ("127.0.0.2", "+442079460999", SOURCE),  # the source is checked first
        ("127.0.0.1", "+442079460999", UNKNOWN_NUMBER),
        ("127.0.0.1", "gateway", UNKNOWN_NUMBER),
        ("127.0.0.1", None, UNKNOWN_NUMBER),
    ],
)
def test_verdict(source: str, called: str | None, verdict: object) -> None:
    assert POLICY.verdict(source, called) == verdict


def test_an_unset_policy_takes_everything_and_a_closed_one_nothing() -> None:
    assert InboundPolicy().verdict("192.0.2.1", "anything") is None
    assert InboundPolicy(networks=()).verdict("127.0.0.1", "+442079460150") == SOURCE
    assert InboundPolicy.build(None, []).verdict("192.0.2.1", "+442079460150") == UNKNOWN_NUMBER
    assert InboundPolicy.build(["10.0.0.0/8"], None).wire() == {"networks": ["10.0.0.0/8"], "numbers": None}
    with pytest.raises(ValueError):
        InboundPolicy.build(["10.0.0.0/33"], None)


INVITE = (
    "INVITE sip:442079460150@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.2:5061;branch=z9hG4bK1\r\n"
    "From: <sip:+14155550123@127.0.0.2>;tag=a\r\n"
    "{to}\r\n"
    "Call-ID: 1@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def test_only_dialog_creating_invites_are_screened() -> None:
    assert new_invite(INVITE.format(to="To: <sip:442079460150@127.0.0.1>"))
    assert new_invite(INVITE.format(to="t: <sip:442079460150@127.0.0.1>"))
    assert not new_invite(INVITE.format(to="To: <sip:442079460150@127.0.0.1>;tag=b"))  # a re-INVITE
    assert not new_invite(INVITE.format(to="To: <sip:x@127.0.0.1> ; TAG = b"))
    assert not new_invite("OPTIONS sip:127.0.0.1 SIP/2.0\r\nTo: <sip:x@y>\r\n\r\n")
    assert not new_invite("SIP/2.0 200 OK\r\n\r\n")


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("sip:proxy.example.net:5060;lr", "proxy.example.net"),
        ("sip:user@203.0.113.5", "203.0.113.5"),
        ("<sips:[2001:db8::1]:5061;transport=tls>", "2001:db8::1"),
        ("proxy.example.net", "proxy.example.net"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_uri_host(uri: str, host: str) -> None:
    assert uri_host(uri) == host


def test_read_trusts_the_layout_only_when_it_reads_right() -> None:
    """``read`` on a pjsip_rx_data built here: the message at msg_buf and the source; None when
    msg_buf points outside the packet or the source is no address (another pjproject's layout)."""
    rx = screen._RxData()
    message = INVITE.format(to="To: <sip:442079460150@127.0.0.1>").encode()
    rx.pkt.packet = message
    rx.pkt.len = len(message)
    rx.pkt.src_name = b"127.0.0.2"
    base = ctypes.addressof(rx)
    rx.msg.msg_buf = base + screen._PACKET
    rx.msg.len = len(message)
    incoming = screen.read(base)
    assert incoming is not None and (incoming.source, incoming.message) == ("127.0.0.2", message.decode())
    rx.pkt.src_name = b"garbage"
    assert screen.read(base) is None
    rx.pkt.src_name = b"127.0.0.2"
    rx.msg.msg_buf = base  # not inside the packet
    assert screen.read(base) is None
