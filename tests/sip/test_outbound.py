"""Outbound calls against SIPp trunks: every outcome row of docs/pjsua2.md, classified by dialer.outcome."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace

import pytest

from dialer.dispatch import end_outcome
from dialer.outcome import UNRESOLVED_HOST, Outcome, classify, end_reason
from dialer.ports import CallAnswered, CallRinging, LaunchRefused
from sip.trunks import Transport
from tests.sip.peers import CALLEE, DID, GatewayFactory, free_port, until

pytestmark = pytest.mark.timeout(30)  # each test; SIPp and workers are killed at teardown

REJECTS = [
    # scenario, filled-in code and phrase, Reason line, code, Q.850 cause, outcome
    ("reject", "486 Busy Here", "Reason: Q.850;cause=17", 486, 17, Outcome.BUSY),
    ("reject", "503 Service Unavailable", "Reason: Q.850;cause=34", 503, 34, Outcome.CAPACITY),
    ("reject", "404 Not Found", "Reason: Q.850;cause=1", 404, 1, Outcome.INVALID_NUMBER),
    ("reject", "603 Decline", "X-Note: no reason", 603, None, Outcome.REJECTED),
    ("ring_reject", "480 Temporarily Unavailable", "Reason: Q.850;cause=19", 480, 19, Outcome.NO_ANSWER),
    ("ring_reject", "408 Request Timeout", "X-Note: no reason", 408, None, Outcome.NO_ANSWER),
]


@pytest.mark.parametrize(("scenario", "status", "reason_line", "code", "cause", "outcome"), REJECTS)
async def test_refused_calls(
    gateway: GatewayFactory, sipp, scenario, status, reason_line, code, cause, outcome
) -> None:
    number, phrase = status.split(" ", 1)
    keys = {"reason_line": reason_line}
    peer = sipp(scenario, keys=keys, fill={"CODE": number, "PHRASE": phrase})
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)
    ended = await gw.ended(request.attempt_id)
    assert (ended.sip_code, ended.q850_cause, ended.confirmed) == (code, cause, False)
    assert ended.worker == "sip-0" and ended.invited_at is not None and ended.answered_at is None
    assert classify(ended.sip_code, ended.confirmed, ended.q850_cause) is outcome
    assert await peer.finished() == 0
    assert gw.gateway.live_attempts() == set()


async def test_answered_then_far_end_bye(gateway: GatewayFactory, sipp) -> None:
    peer = sipp("answer_bye")
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)
    ended = await gw.ended(request.attempt_id)
    assert (ended.sip_code, ended.q850_cause, ended.confirmed) == (200, 16, True)
    assert ended.reason == "Normal call clearing"
    assert ended.invited_at <= ended.ringing_at <= ended.answered_at <= ended.at
    ringing = next(e for e in gw.events if isinstance(e, CallRinging))
    assert ringing.pdd_ms is not None and 0 <= ringing.pdd_ms < 1000
    assert any(isinstance(e, CallAnswered) for e in gw.events)
    assert classify(ended.sip_code, ended.confirmed, ended.q850_cause) is Outcome.ANSWERED
    assert await peer.finished() == 0


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_answered_and_we_hang_up(gateway: GatewayFactory, sipp, transport: Transport) -> None:
    peer = sipp("answer", keys={}, **({"transport": "t1"} if transport is Transport.TCP else {}))
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port, transport=transport))
    await gw.gateway.place(request)
    await until(lambda: any(isinstance(e, CallAnswered) for e in gw.events), 5)
    assert gw.gateway.live_attempts() == {request.attempt_id}
    await gw.gateway.hangup(request.attempt_id)
    ended = await gw.ended(request.attempt_id)
    assert (ended.sip_code, ended.q850_cause, ended.confirmed) == (200, None, True)
    assert classify(ended.sip_code, ended.confirmed) is Outcome.ANSWERED
    assert await peer.finished() == 0  # it also checked From, P-Asserted-Identity, X-* headers, PCMU first
    log = peer.messages()
    assert f"X-Attempt-Id: {request.attempt_id}" in log and f"X-Campaign-Id: {request.campaign_id}" in log


async def test_ringing_until_our_timeout_cancels(gateway: GatewayFactory, sipp) -> None:
    peer = sipp("ring_cancel")
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port), timeout=1)
    await gw.gateway.place(request)
    ended = await gw.ended(request.attempt_id, within=5)
    assert (ended.sip_code, ended.confirmed) == (487, False)
    assert ended.reason == "Request Terminated (timeout)"
    assert (ended.at - ended.invited_at).total_seconds() > 0.9, "not before our 1 s timeout"
    assert classify(ended.sip_code, ended.confirmed, ended.q850_cause) is Outcome.NO_ANSWER
    assert await peer.finished() == 0


async def test_no_response_at_all(gateway: GatewayFactory) -> None:
    # A black hole: pjsua cannot CANCEL before any 1xx, so at our timeout it reports 487 at once
    # (its INVITE transaction and call slot live on until Timer B, 32 s later).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        gw = await gateway()
        request = gw.request(gw.trunk(hole.getsockname()[1]), timeout=1)
        await gw.gateway.place(request)
        ended = await gw.ended(request.attempt_id, within=5)
        assert hole.recv(4096).startswith(b"INVITE ")
    assert (ended.sip_code, ended.confirmed, ended.ringing_at) == (487, False, None)
    assert classify(ended.sip_code, ended.confirmed) is Outcome.NO_ANSWER


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_unresolvable_trunk_host_ends_failed_not_capacity(gateway: GatewayFactory, transport) -> None:
    # A trunk host that resolved when it was saved but not any more: pjsua2 ends the call itself
    # with a 502 of its own, at once, and nothing is sent.
    gw = await gateway()
    trunk = replace(gw.trunk(5060, transport=transport), host="nonexistent.invalid")
    gw.trunks[trunk.id] = trunk
    request = gw.request(trunk)
    await gw.gateway.place(request)
    ended = await gw.ended(request.attempt_id, within=5)
    assert (ended.sip_code, ended.confirmed, ended.ringing_at) == (502, False, None)
    assert "PJ_ERESOLVE" in (ended.reason or "")
    assert end_outcome(ended) is Outcome.FAILED
    assert end_reason(ended.sip_code, ended.reason) == UNRESOLVED_HOST
    assert gw.gateway.live_attempts() == set()


@pytest.mark.parametrize(("password", "code"), [("s3cret", 200), ("wrong", 403)])
async def test_digest_authenticated_trunk(gateway: GatewayFactory, sipp, password: str, code: int) -> None:
    peer = sipp("auth")
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port, username="alice", password=password))
    await gw.gateway.place(request)
    if code == 200:
        await until(lambda: any(isinstance(e, CallAnswered) for e in gw.events), 5)
        await gw.gateway.hangup(request.attempt_id)
    ended = await gw.ended(request.attempt_id)
    assert (ended.sip_code, ended.confirmed) == (code, code == 200)
    assert await peer.finished() == 0
    assert 'Authorization: Digest username="alice"' in peer.messages()  # answer to the 401 challenge
    assert password not in peer.messages()


async def test_outbound_proxy_carries_the_call(gateway: GatewayFactory, sipp) -> None:
    peer = sipp("answer")
    gw = await gateway()
    # The trunk host is unroutable (TEST-NET-1): only the proxy route can reach the peer.
    trunk = gw.trunk(5060, outbound_proxy=f"sip:127.0.0.1:{peer.port}")
    trunk = gw.trunks[trunk.id] = replace(trunk, host="192.0.2.1")
    request = gw.request(trunk)
    await gw.gateway.place(request)
    await until(lambda: any(isinstance(e, CallAnswered) for e in gw.events), 5)
    await gw.gateway.hangup(request.attempt_id)
    assert (await gw.ended(request.attempt_id)).confirmed
    assert await peer.finished() == 0
    log = peer.messages()
    assert "INVITE sip:+14155552671@192.0.2.1:5060 SIP/2.0" in log
    assert f"Route: <sip:127.0.0.1:{peer.port};lr>" in log


async def test_maximum_duration_hangs_up(gateway: GatewayFactory, sipp) -> None:
    peer = sipp("answer")
    gw = await gateway(max_call_seconds=0.5)
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)
    ended = await gw.ended(request.attempt_id, within=5)
    assert (ended.sip_code, ended.confirmed, ended.reason) == (200, True, "OK (max duration)")
    assert 0.4 < (ended.at - ended.answered_at).total_seconds() < 1.0
    assert await peer.finished() == 0


@pytest.mark.parametrize(
    ("number", "allowed", "why"),
    [
        ("+447400123456", frozenset({"US"}), "destination country GB is not allowed on this trunk"),
        ("+19005550123", frozenset(), "premium-rate and shared-cost destinations are never called"),
        ("12345", frozenset(), "destination is not an E.164 number"),
    ],
)
async def test_refused_before_any_invite(gateway: GatewayFactory, number, allowed, why) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trunk_socket:
        trunk_socket.bind(("127.0.0.1", free_port()))
        trunk_socket.setblocking(False)
        gw = await gateway()
        trunk = gw.trunk(trunk_socket.getsockname()[1], allowed_countries=allowed)
        with pytest.raises(LaunchRefused) as refused:
            await gw.gateway.place(gw.request(trunk, to=number))
        assert refused.value.reason == why and number not in why
        await asyncio.sleep(0.1)
        with pytest.raises(BlockingIOError):
            trunk_socket.recv(4096)  # nothing was sent
    assert gw.gateway.live_attempts() == set()


@pytest.mark.slow
async def test_register_with_digest_and_refresh(gateway: GatewayFactory, sipp) -> None:
    peer = sipp("register")
    gw = await gateway()
    trunk = gw.trunk(peer.port, username="alice", password="s3cret", register=True, register_expires=6)
    await gw.gateway.add_trunk(trunk)
    await until(lambda: gw.gateway.registration(trunk.id) == 200, 5)
    assert (
        await peer.finished(within=8) == 0
    )  # it saw the refresh before the 6 s ran out (pjsua refreshes 1 s before expiry)
    assert peer.messages().count("REGISTER sip:127.0.0.1") >= 3


async def test_logs_carry_no_phone_number(gateway: GatewayFactory, sipp, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)
    peer = sipp("reject", keys={"reason_line": "X-Note: none"}, fill={"CODE": "486", "PHRASE": "Busy Here"})
    gw = await gateway(log_level="DEBUG")
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)
    await gw.ended(request.attempt_id)
    with pytest.raises(LaunchRefused):
        await gw.gateway.place(gw.request(gw.trunk(peer.port), to="+19005550123"))
    await gw.gateway.stop()
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert CALLEE[2:] not in text and DID[2:] not in text and "9005550123" not in text


def invites(log: str) -> list[tuple[str, str]]:
    """(transport, message) of each INVITE in a SIPp message log."""
    found = []
    for block in log.split("\n\n-----------------------------------------------"):
        head, _, message = block.partition("bytes :\n\n")
        if message.startswith("INVITE "):
            found.append((head.rsplit("\n", 1)[-1].split(" ", 1)[0], message))
    return found


def rtpmaps(invite: str) -> list[str]:
    return [line.split(" ", 1)[1].strip() for line in invite.splitlines() if line.startswith("a=rtpmap:")]


async def test_invite_offers_g711_and_one_telephone_event_under_1300_bytes(
    gateway: GatewayFactory, sipp
) -> None:
    peer = sipp("reject", keys={"reason_line": "X-Note: none"}, fill={"CODE": "486", "PHRASE": "Busy Here"})
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)
    assert (await gw.ended(request.attempt_id)).sip_code == 486
    assert await peer.finished() == 0
    [(transport, invite)] = invites(peer.messages())
    assert transport == "UDP"
    assert len(invite.replace("\n", "\r\n").encode()) < 1300
    assert rtpmaps(invite) == ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]


async def test_a_large_invite_stays_on_a_udp_trunk(gateway: GatewayFactory, sipp) -> None:
    """A trunk that asks for more codecs, with a long From domain: the INVITE passes 1300 bytes and
    still goes over UDP. The carrier's TCP port takes connections and drops what they carry (as a
    firewall that drops TCP would): an INVITE moved to TCP would never reach SIPp, listening on UDP."""
    peer = sipp("reject", keys={"reason_line": "X-Note: none"}, fill={"CODE": "486", "PHRASE": "Busy Here"})
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as black_hole:
        black_hole.bind(("127.0.0.1", peer.port))
        black_hole.listen(8)  # never accepted: the kernel completes the handshake, nobody reads
        gw = await gateway()
        codecs = ("G722", "speex", "iLBC", "GSM")
        trunk = gw.trunk(peer.port, codecs=codecs, from_domain="d" * 200 + ".example")
        request = gw.request(trunk)
        await gw.gateway.place(request)
        assert (await gw.ended(request.attempt_id)).sip_code == 486
    assert await peer.finished() == 0
    [(transport, invite)] = invites(peer.messages())
    assert transport == "UDP" and len(invite.replace("\n", "\r\n").encode()) > 1300
    offered = rtpmaps(invite)
    assert offered[:2] == ["PCMU/8000", "PCMA/8000"] and "G722/8000" in offered and "GSM/8000" in offered


async def test_calls_offer_session_timers(gateway: GatewayFactory, sipp) -> None:
    """RFC 4028: the INVITE asks for a session timer, so a carrier ends a call whose refreshes stop
    (a gateway killed without a BYE) by itself."""
    peer = sipp("answer_bye")
    gw = await gateway()
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)
    assert (await gw.ended(request.attempt_id)).confirmed
    assert await peer.finished() == 0
    log = peer.messages()
    start = log.index("INVITE sip:")
    invite = log[start : log.index("\n\n", start)]  # its headers
    assert "Session-Expires: 600" in invite and "timer" in invite.partition("Supported:")[2].split("\n")[0]
