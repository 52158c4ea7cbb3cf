"""A second pjsua2 endpoint in its own process (another gateway's worker) as the far end: RTP, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from dialer.ports import CallAnswered
from sip.events import InboundRoute, MediaStats
from sip.reference_worker import ReferenceWorker
from sip.trunks import Transport
from tests.sip.peers import GatewayFactory, Harness, free_port, until
from tests.system_tools import require

pytestmark = pytest.mark.timeout(30)  # each test; SIPp and workers are killed at teardown

NUMBER = "+14155550199"


async def test_rtp_flows_both_ways_between_two_pjsua2_endpoints(gateway: GatewayFactory) -> None:
    far = await gateway()  # the far end: answers calls to an imported number
    far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
    near = await gateway()
    media: dict[UUID, MediaStats] = {}
    near.gateway.on_media = media.__setitem__
    request = near.request(near.trunk(far.port), to=NUMBER)
    await near.gateway.place(request)
    await until(lambda: any(isinstance(e, CallAnswered) for e in near.events), 5)
    await asyncio.sleep(1.0)  # 50 packets of 20 ms each way
    await near.gateway.hangup(request.attempt_id)
    ended = await near.ended(request.attempt_id)
    far_ended = await far.inbound_ended()
    assert ended.confirmed and far_ended.confirmed and far_ended.sip_code == 200
    ours, theirs = media[request.attempt_id], far_ended.media
    assert theirs is not None
    assert ours.tx_packets >= 25 and theirs.rx_packets >= 25  # near → far (50 in a perfect second)
    assert theirs.tx_packets >= 25 and ours.rx_packets >= 25  # far → near
    assert ours.rx_lost == theirs.rx_lost == 0


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A throw-away self-signed certificate and its key (PEM files) for a TLS listener."""
    openssl = require("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


async def test_tls_trunk_between_two_pjsua2_endpoints(
    gateway: GatewayFactory, certificate: tuple[str, str]
) -> None:
    cert, key = certificate
    tls_port = free_port()
    far = await gateway(tls=True, tls_port=tls_port, tls_cert_file=cert, tls_key_file=key)
    far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
    near = await gateway(tls=True)  # a TLS client only: its own TLS port is ephemeral
    request = near.request(near.trunk(tls_port, transport=Transport.TLS), to=NUMBER)
    await near.gateway.place(request)
    await until(lambda: any(isinstance(e, CallAnswered) for e in near.events), 5)
    await near.gateway.hangup(request.attempt_id)
    assert (await near.ended(request.attempt_id)).confirmed
    assert (await far.inbound_ended()).confirmed  # only its TLS port was dialled


def clock_threads(harness: Harness) -> int:
    """Threads named ``clock`` in the harness's worker processes: the null sound device's clock, which
    drives the conference bridge (pjmedia names its clock threads so)."""
    count = 0
    for pid in harness.gateway.workers().values():
        assert pid is not None
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                count += (task / "comm").read_text().strip() == "clock"
    return count


async def test_an_idle_worker_stops_the_bridge_clock_and_starts_it_again_for_the_next_call(
    gateway: GatewayFactory,
) -> None:
    """Workers with nothing going on close the null sound device; a call on a worker whose clock was
    stopped still gets RTP both ways and DTMF through, and the clock stops again after it."""
    ear = ReferenceWorker(greeting_seconds=0, echo=False)
    url = await ear.start()
    try:
        agent = uuid4()

        async def worker_urls(agent_id: UUID) -> str | None:
            return url if agent_id == agent else None

        far = await gateway(clock_idle_seconds=0, worker_urls=worker_urls)
        far.routes[NUMBER] = InboundRoute(agent, uuid4(), uuid4())
        near = await gateway(clock_idle_seconds=0)
        await until(lambda: clock_threads(far) == clock_threads(near) == 0, 5)
        media: dict[UUID, MediaStats] = {}
        near.gateway.on_media = media.__setitem__
        request = near.request(near.trunk(far.port), to=NUMBER)
        await near.gateway.place(request)
        await until(lambda: any(isinstance(e, CallAnswered) for e in near.events), 5)
        session = await until(lambda: next(iter(ear.sessions), None), 5)
        assert clock_threads(near) == clock_threads(far) == 1, "both clocks run during the call"
        assert near.gateway.send_dtmf(request.attempt_id, "5")
        await until(lambda: session.digits == ["5"], 5)
        await asyncio.sleep(1.0)  # 50 packets of 20 ms each way
        await near.gateway.hangup(request.attempt_id)
        assert (await near.ended(request.attempt_id)).confirmed
        far_ended = await far.inbound_ended()
        ours, theirs = media[request.attempt_id], far_ended.media
        assert theirs is not None
        assert ours.tx_packets >= 25 and theirs.rx_packets >= 25
        assert theirs.tx_packets >= 25 and ours.rx_packets >= 25
        assert ours.rx_lost == theirs.rx_lost == 0
        await until(lambda: clock_threads(far) == clock_threads(near) == 0, 5)
    finally:
        await ear.stop()
