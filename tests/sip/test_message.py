"""Pure parts of sip/: SIP message readers, trunk URIs and destination checks, the worker protocol."""

from __future__ import annotations

from uuid import uuid4

import pytest

from sip.inbound import called_number
from sip.message import called_user, caller_user, header_values, q850_cause, request_user
from sip.protocol import Dial, Ended, Full, Ready, decode, encode
from sip.trunks import Transport, TrunkConfig, refusal

BYE = (
    "BYE sip:gateway@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    'f: "Someone" <sip:+14155550123@trunk.example;user=phone>;tag=a\r\n'
    "t: <sip:+14155550199@gw.example>;tag=b\r\n"
    'reason: SIP;cause=200;text="Call completed, elsewhere",\r\n'
    ' Q.850 ;cause=16 ;text="Normal call clearing"\r\n'
    "Content-Length: 0\r\n\r\n"
    "Reason: Q.850;cause=99\r\n"  # in a body: not a header
)


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        (BYE, 16),
        ('SIP/2.0 486 Busy Here\r\nReason: Q.850;cause=17;text="User busy"\r\n\r\n', 17),
        ("SIP/2.0 503 Service Unavailable\r\nReason: SIP;cause=503\r\nReason: Q.850;cause=34\r\n\r\n", 34),
        ("SIP/2.0 603 Decline\r\nContent-Length: 0\r\n\r\n", None),
        ("SIP/2.0 480 Temporarily Unavailable\r\nReason: Q.850;cause=x\r\n\r\n", None),
        ("", None),
    ],
)
def test_q850_cause(message: str, cause: int | None) -> None:
    assert q850_cause(message) == cause


def test_headers_and_users() -> None:
    assert header_values(BYE, "FROM") == ['"Someone" <sip:+14155550123@trunk.example;user=phone>;tag=a']
    assert caller_user(BYE) == "+14155550123"
    assert request_user(BYE) == "gateway"
    invite = "INVITE sip:%2B14155550199@gw.example SIP/2.0\r\nTo: <sip:other@gw.example>\r\n\r\n"
    assert called_user(invite) == "+14155550199"
    no_user = "INVITE sip:gw.example SIP/2.0\r\nTo: <tel:+14155550199>\r\n\r\n"
    assert called_user(no_user) == "+14155550199"
    assert request_user("SIP/2.0 200 OK\r\n\r\n") is None


@pytest.mark.parametrize(
    ("user", "number"),
    [("14155550199", "+14155550199"), ("+14155550199", "+14155550199"), ("support", "support"), ("1", "1")],
)
def test_called_number_reads_e164_with_or_without_plus(user: str, number: str) -> None:
    assert called_number(user) == number


def test_trunk_uris_and_account() -> None:
    trunk = TrunkConfig(uuid4(), "sip.example", 5080, Transport.TCP, "alice", "s3cret", register=True)
    assert trunk.request_uri("+14155552671") == "sip:+14155552671@sip.example:5080;transport=tcp"
    assert trunk.caller_uri("+14155550100") == "sip:+14155550100@sip.example"
    assert "s3cret" not in repr(trunk)
    assert trunk.account(register=True)["registrar"] == "sip:sip.example:5080;transport=tcp"
    assert trunk.account(register=False)["registrar"] == ""
    plain = TrunkConfig(uuid4(), "10.0.0.1", strip_plus=True, from_domain="example.com")
    assert plain.request_uri("+14155552671") == "sip:14155552671@10.0.0.1:5060"
    assert plain.caller_uri("+14155550100") == "sip:14155550100@example.com"


@pytest.mark.parametrize(
    ("number", "countries", "reason"),
    [
        ("+14155552671", frozenset({"US"}), None),
        ("+14155552671", frozenset(), None),
        ("+447400123456", frozenset({"US", "CA"}), "destination country GB is not allowed on this trunk"),
        ("+19005550123", frozenset(), "premium-rate and shared-cost destinations are never called"),
        ("+448712345678", frozenset(), "premium-rate and shared-cost destinations are never called"),
        ("+34901123456", frozenset(), "premium-rate and shared-cost destinations are never called"),
        ("4155552671", frozenset(), "destination is not an E.164 number"),
    ],
)
def test_refusal(number: str, countries: frozenset[str], reason: str | None) -> None:
    assert refusal(TrunkConfig(uuid4(), "sip.example", allowed_countries=countries), number) == reason


def test_protocol_round_trip() -> None:
    dial = Dial(7, "trunk", "sip:+1@h", "sip:+2@h", {"X-Attempt-Id": "a"}, 30.0, 3600.0)
    ended = Ended(7, 1.5, 486, "Busy Here", 17, False, 1.0, None, None, rtp={"rx": 1, "tx": 2, "rx_lost": 0})
    for record in (dial, ended, Full(7, 0.2), Ready(4, 123)):
        line = encode(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode(line) == record
    with pytest.raises(ValueError):
        decode(b'{"t": "Nope"}\n')
