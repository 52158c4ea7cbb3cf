"""The bridge's reconnect policy against real peers: a dropped worker socket re-opened mid-call.

Same set-up as test_bridge.py (a far pjsua2 endpoint, a near gateway streaming to a WebSocket worker),
with ``worker_reconnects`` set on the near gateway. The default (0: a drop hangs up within 2 s) is
tested in test_bridge.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialer.ports import CallEnded
from sip.audio import tone
from sip.events import WorkerConnected, WorkerMissing
from sip.reference_worker import ReferenceWorker, WorkerSession
from sip.stream import WORKER_CLOSED, WORKER_DISCONNECTED
from tests.sip.peers import GatewayFactory, until
from tests.sip.test_bridge import call_through_bridge, hang_up, write_wav
from tests.sip.workers import GatedWorker

pytestmark = pytest.mark.timeout(60)

RECONNECTS = {"worker_reconnects": 2, "worker_backoff": 0.1}


class ChunkWorker(ReferenceWorker):
    """Notes the ``chunk`` of every media frame, per session."""

    def __init__(self) -> None:
        super().__init__(greeting_seconds=0, echo=False)
        self.chunks: dict[int, list[int]] = {}

    async def _heard(self, session: WorkerSession, message: dict[str, Any]) -> None:
        self.chunks.setdefault(id(session), []).append(int(message["media"]["chunk"]))
        await super()._heard(session, message)


@pytest.fixture
async def worker() -> AsyncIterator[ChunkWorker]:
    server = ChunkWorker()
    await server.start()
    yield server
    await server.stop()


async def test_a_dropped_socket_is_reopened_and_the_call_goes_on(
    gateway: GatewayFactory, worker: ChunkWorker
) -> None:
    call = await call_through_bridge(gateway, worker.url, worker, RECONNECTS)
    first = await call.session()
    await until(lambda: first.media_frames >= 10, 2)
    first.ws.transport.abort()  # no closing handshake: the TCP connection just goes
    second: WorkerSession = await until(
        lambda: len(worker.sessions) == 2 and worker.sessions[1].start is not None and worker.sessions[1], 3
    )
    await until(lambda: second.media_frames >= 10, 2)
    await second.send_mark("after-reconnect")
    await until(lambda: "after-reconnect" in second.mark_names(), 2)  # its audio path plays out again

    assert call.near.gateway.live_attempts() == {call.request.attempt_id}
    assert not any(isinstance(e, CallEnded) for e in call.near.events), "the call was not hung up"
    assert [e["event"] for e in second.events[:2]] == ["connected", "start"]
    assert first.start is not None and second.start is not None
    assert (second.start["callSid"], second.start["streamSid"]) == (
        first.start["callSid"],
        first.start["streamSid"],
    )
    assert "reconnect" not in first.start["customParameters"]
    assert second.start["customParameters"] == {**first.start["customParameters"], "reconnect": "1"}
    assert int(second.events[1]["sequenceNumber"]) == 1, "a new socket numbers its messages afresh"
    before, after = worker.chunks[id(first)], worker.chunks[id(second)]
    # Media timestamps follow the call's clock: the frames heard while the socket was re-opened
    # (at least the 100 ms backoff) are skipped, not squeezed.
    assert after == list(range(after[0], after[0] + len(after)))
    assert after[0] - before[-1] >= 3, (before[-1], after[0])

    await hang_up(call)
    ended = next(e for e in call.near.events if isinstance(e, CallEnded))
    assert ended.reason is None or WORKER_DISCONNECTED not in ended.reason
    await until(lambda: second.stopped, 3)
    joined = [e for e in call.bridge_events if isinstance(e, WorkerConnected | WorkerMissing)]
    assert [type(e) for e in joined] == [WorkerConnected], "a re-opened socket is not a second answer"


async def test_a_worker_that_does_not_come_back_still_hangs_up_within_2_s(gateway: GatewayFactory) -> None:
    server = GatedWorker([0.0, 30.0])  # back only to hang in the WebSocket handshake
    await server.start()
    try:
        call = await call_through_bridge(gateway, server.url, server, {"worker_reconnects": 3})
        session = await call.session()
        await until(lambda: session.media_frames >= 5, 2)
        dropped = time.monotonic()
        session.ws.transport.abort()
        ended = await call.near.ended(call.request.attempt_id, within=5)
        delay = time.monotonic() - dropped
    finally:
        await server.stop()
    assert ended.confirmed and ended.reason is not None and ended.reason.endswith(f"({WORKER_DISCONNECTED})")
    # `within=5` bounds it: the 1.5 s budget hangs up, not the far end's own 32 s timers (no timing assertion)
    assert server.handshakes == 2, "one re-opening, given the rest of the budget, then the hang-up"
    print(f"worker gone for good: hung up {delay * 1000:.0f} ms after the drop")


async def test_a_worker_closing_normally_is_not_reconnected(
    gateway: GatewayFactory, worker: ChunkWorker
) -> None:
    call = await call_through_bridge(gateway, worker.url, worker, RECONNECTS)
    session = await call.session()
    await until(lambda: session.media_frames >= 5, 2)
    await session.ws.close()  # 1000: the worker is done on purpose, a hang-up by the worker
    ended = await call.near.ended(call.request.attempt_id, within=5)
    assert ended.reason is not None and ended.reason.endswith(f"({WORKER_CLOSED})")
    assert len(worker.sessions) == 1


async def test_a_digit_pressed_before_start_reaches_the_worker_after_it(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = GatedWorker([0.8])  # the socket opens 0.8 s after the answer
    await server.start()
    try:
        call = await call_through_bridge(gateway, server.url, server)
        # A phone always sends audio; pjsua's stream sends queued DTMF only while it is fed frames.
        assert call.far.gateway.play(call.far_call, write_wav(tmp_path / "quiet.wav", tone(440, 2.0, 0.01)))
        assert call.far.gateway.send_dtmf(call.far_call, "5")  # pressed while the worker is not there yet
        session = await call.session()
        await until(lambda: session.digits == ["5"], 3)
        assert [e["event"] for e in session.events[:3]] == ["connected", "start", "dtmf"]
        await hang_up(call)
    finally:
        await server.stop()
