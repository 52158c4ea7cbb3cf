"""A refused REFER's bridged fallback through a carrier edge: the human's leg reaches another UAS.

The gateway's trunk points at Kamailio (``carrier_edge.cfg``), which routes each new INVITE by its
Request-URI user, the human's number to one peer and any other number to the callee's SIPp, and
record-routes, so our REFER and BYEs and the callee's NOTIFYs all pass through it. The callee refuses
the REFER (405 or 603 response, or a NOTIFY carrying 486); the human is either a second SIPp UAS or a
second pjsua2 endpoint. With the pjsua2 human, audio is proven on both bridged legs: the human plays
1 kHz, the callee's SIPp echoes its RTP (``-rtp_echo``), and the human hears its 1 kHz back only if the
bridge carries audio both ways; the human's RTP packets are counted by its pjsua.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from sip.audio import tone
from sip.events import (
    BridgeEvent,
    InboundAnswered,
    InboundRoute,
    TransferCompleted,
    TransferFailed,
    TransferProgress,
)
from sip.reference_worker import ReferenceWorker, WorkerSession
from tests.sip.peers import DID, GatewayFactory, Harness, Sipp, free_port, kamailio_command, until
from tests.sip.test_bridge import read_wav, write_wav
from tests.sip.transfer_peers import HUMAN, fill, notify, takes_refer
from tests.system_tools import skip_module_unless

pytestmark = pytest.mark.timeout(60)

CONFIG = Path(__file__).with_name("carrier_edge.cfg")
SIP_REFER_TO = r"sip:[+]14155550142@127[.]0[.]0[.]1"
NOBODY = "0000"  # the callee's SIPp treats every INVITE as the callee's: a human INVITE there fails the test

skip_module_unless("kamailio", "kamailio")

REFUSALS = {
    "405": takes_refer(SIP_REFER_TO, "405 Method Not Allowed"),
    "603": takes_refer(SIP_REFER_TO, "603 Decline"),
    "notify-486": takes_refer(
        SIP_REFER_TO,
        "202 Accepted",
        notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 486 Busy Here", final=True),
    ),
}


@dataclass
class Edge:
    """A running carrier edge: its port and its log (one line per routing decision)."""

    port: int
    log: Path

    def lines(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Callable[[int, int], Edge]]:
    """Start the edge proxy: INVITEs for HUMAN to ``human_port``, the rest to ``callee_port``."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(callee_port: int, human_port: int) -> Edge:
        port, log = free_port(), tmp_path / "edge.log"
        args = kamailio_command(CONFIG, port, tmp_path)
        args += ["-A", f'HUMAN_RE="^[+]?{HUMAN.lstrip("+")}$"']
        args += ["-A", f'HUMAN_URI="sip:127.0.0.1:{human_port}"']
        args += ["-A", f'CALLEE_URI="sip:127.0.0.1:{callee_port}"']
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        time.sleep(0.5)  # bind
        assert proc.poll() is None, log.read_text()[-2000:]
        return Edge(port, log)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
async def worker() -> AsyncIterator[ReferenceWorker]:
    server = ReferenceWorker(greeting_seconds=0, echo=False)
    await server.start()
    yield server
    await server.stop()


@dataclass
class Transferred:
    near: Harness
    callee: Sipp
    attempt: UUID
    events: list[BridgeEvent]
    session: WorkerSession
    done: TransferCompleted | TransferFailed

    def fallback_ms(self) -> float:
        """From the REFER's final failure (response or NOTIFY) to the human's leg answered and bridged."""
        refused = next(
            p for p in self.events if isinstance(p, TransferProgress) and p.method == "refer" and p.final
        )
        return (self.done.at - refused.at).total_seconds() * 1000


async def transfer_through_edge(
    gateway: GatewayFactory,
    sipp: Callable[..., Sipp],
    edge: Callable[[int, int], Edge],
    worker: ReferenceWorker,
    refusal: str,
    human_port: int,
) -> tuple[Transferred, Edge]:
    """A call answered by the callee's SIPp behind the edge, streamed to ``worker``, then an ``auto``
    transfer to HUMAN that the callee refuses per ``refusal``."""
    agent = uuid4()

    async def worker_urls(agent_id: UUID) -> str | None:
        return worker.url if agent_id == agent else None

    near = await gateway(worker_urls=worker_urls)
    events: list[BridgeEvent] = []
    near.gateway.on_bridge = events.append
    callee = sipp("refer_trunk", fill=fill(REFUSALS[refusal]) | {"HUMAN": NOBODY}, extra=("-rtp_echo",))
    proxy = edge(callee.port, human_port)
    request = replace(near.request(near.trunk(proxy.port)), agent_id=agent)
    await near.gateway.place(request)
    session: WorkerSession = await until(lambda: next((s for s in worker.sessions if s.start), None), 5)
    await near.gateway.transfer(request.attempt_id, HUMAN, "auto")
    done = await until(
        lambda: next((e for e in events if isinstance(e, TransferCompleted | TransferFailed)), None), 10
    )
    return Transferred(near, callee, request.attempt_id, events, session, done), proxy


def assert_bridged(call: Transferred, refusal: str) -> None:
    done = call.done
    assert isinstance(done, TransferCompleted), done
    assert (done.method, done.result) == ("bridge", "bridged")
    progress = [(p.method, p.sip_code, p.final) for p in call.events if isinstance(p, TransferProgress)]
    refused = 486 if refusal == "notify-486" else int(refusal)
    assert ("refer", refused, True) in progress and progress[-1] == ("bridge", 200, True), progress


def assert_routed_by_the_edge(proxy: Edge, callee: Sipp, refusal: str) -> None:
    """Both INVITEs were routed by number, and every in-dialog request followed the route set."""
    assert proxy.lines("edge: INVITE to the callee's UAS") == 1
    assert proxy.lines("edge: INVITE to the human's UAS") == 1
    assert proxy.lines("edge: in-dialog REFER relayed") == 1
    assert proxy.lines("edge: in-dialog NOTIFY relayed") == (2 if refusal == "notify-486" else 0)
    assert proxy.lines("edge: in-dialog BYE relayed") == 2, "our BYEs to the callee and to the human"
    messages = callee.messages()
    assert messages.count("INVITE sip:") == 1, "the human's INVITE never reached the callee's SIPp"
    top_via = rf"^REFER sip:\S+ SIP/2\.0\nVia: SIP/2\.0/UDP 127\.0\.0\.1:{proxy.port};"
    assert re.search(top_via, messages, re.M), "the REFER came through the edge"


@pytest.mark.parametrize("refusal", ["405", "603", "notify-486"])
async def test_fallback_reaches_a_second_sipp_uas(
    gateway: GatewayFactory,
    sipp: Callable[..., Sipp],
    edge: Callable[[int, int], Edge],
    worker: ReferenceWorker,
    refusal: str,
) -> None:
    human = sipp("human_uas", fill={"HUMAN": HUMAN.lstrip("+"), "DID": DID.lstrip("+")}, extra=("-rtp_echo",))
    call, proxy = await transfer_through_edge(gateway, sipp, edge, worker, refusal, human.port)
    assert_bridged(call, refusal)
    await until(lambda: call.session.stopped, 3)  # the voice worker is off the call
    assert call.near.gateway.live_attempts() == {call.attempt}, "the callee's leg stays up, bridged"
    await call.near.gateway.hangup(call.attempt)
    ended = await call.near.ended(call.attempt)
    assert ended.transferred and ended.confirmed
    assert await call.callee.finished() == 0, "the callee refused our REFER and got our BYE"
    assert await human.finished() == 0, "the human's own UAS answered (from the DID) and got our BYE"
    assert_routed_by_the_edge(proxy, call.callee, refusal)
    print(f"REFER {refusal} → second SIPp UAS answered and bridged in {call.fallback_ms():.0f} ms")


@pytest.mark.parametrize("refusal", ["405", "603", "notify-486"])
async def test_bridged_legs_carry_audio_both_ways(
    gateway: GatewayFactory,
    sipp: Callable[..., Sipp],
    edge: Callable[[int, int], Edge],
    worker: ReferenceWorker,
    refusal: str,
    tmp_path: Path,
) -> None:
    human = await gateway()  # a second pjsua2 endpoint answering the human's number
    human.routes[HUMAN] = InboundRoute(uuid4(), uuid4(), uuid4())
    call, proxy = await transfer_through_edge(gateway, sipp, edge, worker, refusal, human.port)
    assert_bridged(call, refusal)
    answered = await until(
        lambda: next((e for e in human.inbound if isinstance(e, InboundAnswered)), None), 5
    )
    heard = tmp_path / "human-heard.wav"
    assert human.gateway.play(answered.call_id, write_wav(tmp_path / "1k.wav", tone(1000, 1.0)))
    assert human.gateway.record(answered.call_id, str(heard))
    await asyncio.sleep(2.0)  # the human talks: 100 packets of 20 ms
    await call.near.gateway.hangup(call.attempt)
    assert (await call.near.ended(call.attempt)).transferred
    ended = await human.inbound_ended()
    assert ended.confirmed and ended.media is not None
    recording = await read_wav(heard)
    loud = [x for x in recording.windows(1000) if x > 0.3]
    # The human's 1 kHz went human → gateway → callee, was echoed, and came back callee → gateway → human.
    assert len(loud) >= 5, recording.windows(1000)  # at least 1 s of it
    assert ended.media.rx_packets >= 50, ended.media  # 2 s of 20 ms packets is 100
    assert await call.callee.finished() == 0
    assert_routed_by_the_edge(proxy, call.callee, refusal)
    print(
        f"REFER {refusal} → pjsua2 human bridged in {call.fallback_ms():.0f} ms; human RTP rx "
        f"{ended.media.rx_packets} tx {ended.media.tx_packets}, 1 kHz heard back in {len(loud) * 0.2:.1f} s"
    )
