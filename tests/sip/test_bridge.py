"""The voice-worker bridge against real peers: a second pjsua2 endpoint as the callee, a WebSocket worker.

The far end is another gateway's worker answering an imported number: it plays a WAV tone into the
call (pjsua2's AudioMediaPlayer) and records what it hears (AudioMediaRecorder). The near gateway
streams the call to a ``ReferenceWorker``. Frequencies are found with a Goertzel filter.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from dialer.ports import CallAnswered, CallRequest
from sip.audio import RATE, level, tone
from sip.events import (
    BridgeEvent,
    HangupRequested,
    InboundAnswered,
    InboundRoute,
    TransferRequested,
    WorkerConnected,
    WorkerMissing,
)
from sip.reference_worker import GREETING_MARK, ReferenceWorker, WorkerSession
from sip.stream import WORKER_DISCONNECTED, WORKER_HANGUP, WORKER_UNREACHABLE
from tests.sip.peers import CALLEE, DID, GatewayFactory, Harness, free_port, until

pytestmark = pytest.mark.timeout(60)  # each test; workers are stopped at teardown

NUMBER = "+14155550199"  # the far end's imported number


def write_wav(path: Path, pcm: bytes) -> str:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return str(path)


@dataclass
class Recording:
    """A WAV recorded by pjsua (at its conference bridge's clock rate, 16 kHz by default)."""

    rate: int
    pcm: bytes

    def windows(self, hz: float, seconds: float = 0.2) -> list[float]:
        """``level`` at ``hz`` of each window of ``seconds``."""
        size = int(self.rate * seconds) * 2
        return [
            level(self.pcm[at : at + size], hz, self.rate) for at in range(0, len(self.pcm) - size + 1, size)
        ]


async def read_wav(path: Path, within: float = 5.0) -> Recording:
    """A recording, once its recorder was destroyed at the end of the call (its header is final then)."""

    def frames() -> Recording | None:
        try:
            with wave.open(str(path), "rb") as wav:
                assert (wav.getsampwidth(), wav.getnchannels()) == (2, 1)
                pcm = wav.readframes(wav.getnframes())
                return Recording(wav.getframerate(), pcm) if pcm else None
        except (OSError, EOFError, wave.Error):
            return None

    result: Recording = await until(frames, within)
    return result


@dataclass
class Bridged:
    near: Harness
    far: Harness
    worker: ReferenceWorker
    request: CallRequest
    far_call: UUID
    bridge_events: list[BridgeEvent]

    async def session(self, within: float = 5.0) -> WorkerSession:
        result: WorkerSession = await until(
            lambda: next((s for s in self.worker.sessions if s.start is not None), None), within
        )
        return result


@pytest.fixture
async def worker() -> AsyncIterator[ReferenceWorker]:
    server = ReferenceWorker(greeting_seconds=0, echo=False)
    await server.start()
    yield server
    await server.stop()


async def call_through_bridge(
    gateway: GatewayFactory,
    url: str | None,
    worker: ReferenceWorker,
    options: dict[str, Any] | None = None,
    **request_fields: Any,
) -> Bridged:
    """A far end answering NUMBER, a near gateway whose agent streams to ``url`` (more SipGateway
    ``options`` if given), one call between."""
    far = await gateway()
    far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
    agent = uuid4()

    async def worker_urls(agent_id: UUID) -> str | None:
        return url if agent_id == agent else None

    near = await gateway(worker_urls=worker_urls, **(options or {}))
    events: list[BridgeEvent] = []
    near.gateway.on_bridge = events.append
    request = replace(near.request(near.trunk(far.port), to=NUMBER), agent_id=agent, **request_fields)
    await near.gateway.place(request)
    answered = await until(lambda: next((e for e in far.inbound if isinstance(e, InboundAnswered)), None), 5)
    return Bridged(near, far, worker, request, answered.call_id, events)


async def hang_up(call: Bridged) -> None:
    await call.near.gateway.hangup(call.request.attempt_id)
    assert (await call.near.ended(call.request.attempt_id)).confirmed
    await call.far.inbound_ended()


async def test_audio_round_trip_440_in_1k_out(
    gateway: GatewayFactory, worker: ReferenceWorker, tmp_path: Path
) -> None:
    worker.greeting_hz, worker.greeting_seconds = 1000.0, 3.0  # the worker speaks 1 kHz
    call = await call_through_bridge(gateway, worker.url, worker)
    recording = tmp_path / "far.wav"
    assert call.far.gateway.record(call.far_call, str(recording))
    assert call.far.gateway.play(call.far_call, write_wav(tmp_path / "a440.wav", tone(440, 2.0)))
    session = await call.session()
    await asyncio.sleep(2.5)
    await hang_up(call)
    # The worker heard the far end's 440 Hz (mu-law frames of 20 ms, decoded).
    assert session.media_frames >= 100
    heard = bytes(session.heard[-RATE:])  # the last 0.5 s
    at_440, at_1k = level(heard, 440), level(heard, 1000)
    assert at_440 > 0.3 and at_1k < 0.05, (at_440, at_1k)
    # The far end heard the worker's 1 kHz greeting.
    far = await read_wav(recording)
    loud = [x for x in far.windows(1000) if x > 0.3]
    assert len(loud) >= 8, far.windows(1000)  # at least 1.6 s of the tone
    assert max(far.windows(440)) < 0.05
    print(f"worker heard 440 Hz at {at_440:.3f} (1 kHz {at_1k:.4f}); far end heard 1 kHz at {max(loud):.3f}")


async def test_start_carries_call_metadata_and_stop_ends_the_stream(
    gateway: GatewayFactory, worker: ReferenceWorker
) -> None:
    prospect = uuid4()
    call = await call_through_bridge(
        gateway,
        worker.url,
        worker,
        prospect_id=prospect,
        prospect_name="Ada Lovelace",
        attempt_number=2,
        custom={"plan": "gold", "visits": 3, "to": "clash"},
    )
    session = await call.session()
    request = call.request
    assert [e["event"] for e in session.events[:2]] == ["connected", "start"]
    assert session.start is not None
    assert session.start["accountSid"] == str(request.tenant_id)
    assert session.start["callSid"] == str(request.attempt_id)
    assert session.start["streamSid"] == session.stream_sid and session.stream_sid.startswith("MZ")
    assert session.start["tracks"] == ["inbound"]
    assert session.start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert session.start["customParameters"] == {
        "campaign_id": str(request.campaign_id),
        "prospect_id": str(prospect),
        "prospect_name": "Ada Lovelace",
        "direction": "outbound",
        "from": DID,
        "to": NUMBER,
        "from_number": DID,
        "to_number": NUMBER,
        "attempt_number": "2",
        "attempt_id": str(request.attempt_id),
        "agent_id": str(request.agent_id),
        "plan": "gold",
        "visits": "3",
        "custom.to": "clash",
    }
    await until(lambda: session.media_frames >= 10, 2)
    await hang_up(call)
    await until(lambda: session.stopped and session.closed, 3)
    joined = [e for e in call.bridge_events if isinstance(e, WorkerConnected | WorkerMissing)]
    assert len(joined) == 1 and isinstance(joined[0], WorkerConnected), "told once: the worker took the call"
    assert (joined[0].call_id, joined[0].inbound) == (request.attempt_id, False)
    assert joined[0].answered_at <= joined[0].at
    stop = session.events[-1]
    assert stop["event"] == "stop" and stop["stop"]["callSid"] == str(request.attempt_id)
    sequence = [int(e["sequenceNumber"]) for e in session.events if "sequenceNumber" in e]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)


async def test_media_frames_are_20_ms_of_mulaw_in_sequence(gateway: GatewayFactory) -> None:
    seen: list[dict[str, Any]] = []

    class Recording(ReferenceWorker):
        async def _heard(self, session: WorkerSession, message: dict[str, Any]) -> None:
            seen.append(message)
            await super()._heard(session, message)

    server = Recording(greeting_seconds=0, echo=False)
    await server.start()
    try:
        call = await call_through_bridge(gateway, server.url, server)
        await until(lambda: len(seen) >= 25, 3)
        await hang_up(call)
    finally:
        await server.stop()
    media = [m["media"] for m in seen[:25]]
    assert all(m["track"] == "inbound" for m in media)
    assert [int(m["chunk"]) for m in media] == list(range(1, 26))
    assert [int(m["timestamp"]) for m in media] == [20 * i for i in range(25)]
    assert {len(server.sessions[0].heard) // server.sessions[0].media_frames} == {320}  # 160 mu-law bytes


async def test_dtmf_reaches_the_worker_and_its_transfer_and_hangup_reach_the_gateway(
    gateway: GatewayFactory, worker: ReferenceWorker, tmp_path: Path
) -> None:
    call = await call_through_bridge(gateway, worker.url, worker)
    # A phone always sends audio; pjsua's stream sends queued DTMF only while it is fed frames.
    assert call.far.gateway.play(call.far_call, write_wav(tmp_path / "quiet.wav", tone(440, 1.0, 0.01)))
    session = await call.session()
    assert call.far.gateway.send_dtmf(call.far_call, "0")
    transfer = await until(
        lambda: next((e for e in call.bridge_events if isinstance(e, TransferRequested)), None), 5
    )
    assert (transfer.call_id, transfer.to, transfer.mode, transfer.inbound) == (
        call.request.attempt_id,
        worker.transfer_to,
        "auto",
        False,
    )
    assert call.near.gateway.live_attempts() == {
        call.request.attempt_id
    }  # a transfer request alone ends nothing
    assert call.far.gateway.send_dtmf(call.far_call, "9")
    ended = await call.near.ended(call.request.attempt_id, within=5)
    assert session.digits == ["0", "9"]
    hangup = next(e for e in call.bridge_events if isinstance(e, HangupRequested))
    assert (hangup.call_id, hangup.reason) == (call.request.attempt_id, "the caller asked to end the call")
    assert ended.confirmed and ended.reason is not None and ended.reason.endswith(f"({WORKER_HANGUP})")
    assert (await call.far.inbound_ended()).confirmed


async def test_marks_echo_in_order_once_their_audio_has_played(
    gateway: GatewayFactory, worker: ReferenceWorker
) -> None:
    call = await call_through_bridge(gateway, worker.url, worker)
    session = await call.session()
    await until(lambda: GREETING_MARK in session.mark_names(), 2)  # no greeting: echoed at once
    sent = time.monotonic()
    for name in ("one", "two", "three"):
        await session.send_audio(tone(1000, 0.2))
        await session.send_mark(name)
    await until(lambda: len(session.marks) == 4, 3)
    assert session.mark_names() == [GREETING_MARK, "one", "two", "three"]
    times = [at - sent for _, at in session.marks[1:]]
    # Played at real-time pace: 200 ms of audio before each mark.
    assert 0.15 < times[0] < 0.4 and 0.15 < times[1] - times[0] < 0.3 and 0.15 < times[2] - times[1] < 0.3, (
        times
    )
    await hang_up(call)


async def test_clear_drops_queued_audio_within_a_frame(
    gateway: GatewayFactory, worker: ReferenceWorker, tmp_path: Path
) -> None:
    call = await call_through_bridge(gateway, worker.url, worker)
    recording = tmp_path / "far.wav"
    assert call.far.gateway.record(call.far_call, str(recording))
    session = await call.session()
    await session.send_audio(tone(1000, 5.0))
    await session.send_mark("after-speech")
    await asyncio.sleep(0.6)
    cleared = time.monotonic()
    await session.send_clear()
    await session.send_mark("after-clear")
    await until(lambda: "after-clear" in session.mark_names(), 2)
    marks = dict(session.marks)
    # The mark behind the dropped audio is echoed at once, then the next mark at the next tick.
    assert session.mark_names()[-2:] == ["after-speech", "after-clear"]
    assert marks["after-clear"] - cleared < 0.1, marks["after-clear"] - cleared
    await asyncio.sleep(0.5)
    await hang_up(call)
    far = await read_wav(recording)
    playing = sum(x > 0.3 for x in far.windows(1000, 0.02))  # 20 ms windows with the tone
    assert 0.3 / 0.02 < playing < 1.0 / 0.02, playing  # ~0.6 s of the 5 s reached the far end


async def test_unreachable_worker_hangs_up_within_2_s(
    gateway: GatewayFactory, worker: ReferenceWorker
) -> None:
    closed = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    call = await call_through_bridge(gateway, closed, worker)
    answered = await until(
        lambda: next((e for e in call.near.events if isinstance(e, CallAnswered)), None), 2
    )
    ended = await call.near.ended(call.request.attempt_id, within=5)
    delay = (ended.at - answered.at).total_seconds()
    assert ended.confirmed and ended.reason is not None and ended.reason.endswith(f"({WORKER_UNREACHABLE})")
    # `within=5` bounds it: the 1.5 s budget hangs up, not the far end's own 32 s timers (no timing assertion)
    joined = [e for e in call.bridge_events if isinstance(e, WorkerConnected | WorkerMissing)]
    assert [type(e) for e in joined] == [WorkerMissing], "told once, before the end: the worker never came"
    assert isinstance(joined[0], WorkerMissing) and not joined[0].call_ended, "the bridge gave up on it"
    print(f"unreachable worker: hung up {delay * 1000:.0f} ms after answer")


async def test_dropped_socket_hangs_up_within_2_s(gateway: GatewayFactory, worker: ReferenceWorker) -> None:
    call = await call_through_bridge(gateway, worker.url, worker)
    session = await call.session()
    await until(lambda: session.media_frames >= 5, 2)
    dropped = time.monotonic()
    session.ws.transport.abort()  # no closing handshake: the TCP connection just goes
    ended = await call.near.ended(call.request.attempt_id, within=5)
    delay = time.monotonic() - dropped
    assert ended.confirmed and ended.reason is not None and ended.reason.endswith(f"({WORKER_DISCONNECTED})")
    # `within=5` bounds it: the 1.5 s budget hangs up, not the far end's own 32 s timers (no timing assertion)
    assert (await call.far.inbound_ended()).confirmed
    print(f"dropped socket: hung up within {delay * 1000:.0f} ms")


async def test_inbound_call_on_an_imported_number_is_streamed(
    gateway: GatewayFactory, worker: ReferenceWorker
) -> None:
    route = InboundRoute(uuid4(), uuid4(), uuid4())

    async def worker_urls(agent_id: UUID) -> str | None:
        return worker.url if agent_id == route.agent_id else None

    callee = await gateway(worker_urls=worker_urls)
    callee.routes[NUMBER] = route
    caller = await gateway()  # a plain caller: no bridge on its side
    request = caller.request(caller.trunk(callee.port), to=NUMBER)
    await caller.gateway.place(request)
    session: WorkerSession = await until(lambda: next((s for s in worker.sessions if s.start), None), 5)
    assert session.start is not None
    offered = await until(lambda: next((e for e in callee.inbound if hasattr(e, "route")), None), 2)
    assert session.start["callSid"] == str(offered.call_id)
    assert session.start["accountSid"] == str(route.tenant_id)
    params = session.start["customParameters"]
    assert (params["direction"], params["to"], params["from"], params["agent_id"]) == (
        "inbound",
        NUMBER,
        DID,
        str(route.agent_id),
    )
    await until(lambda: session.media_frames >= 10, 2)
    await caller.gateway.hangup(request.attempt_id)
    await callee.inbound_ended()
    await until(lambda: session.stopped, 3)
    assert CALLEE != NUMBER


async def test_worker_that_never_answers_the_handshake_hangs_up_within_2_s(
    gateway: GatewayFactory, worker: ReferenceWorker
) -> None:
    accepted: list[asyncio.StreamWriter] = []
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(65536)  # takes the HTTP upgrade request, never answers it
        await done.wait()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        call = await call_through_bridge(gateway, f"ws://127.0.0.1:{port}", worker)
        answered = await until(
            lambda: next((e for e in call.near.events if isinstance(e, CallAnswered)), None), 2
        )
        ended = await call.near.ended(call.request.attempt_id, within=5)
    finally:
        done.set()
        for writer in accepted:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
    delay = (ended.at - answered.at).total_seconds()
    assert ended.reason is not None and ended.reason.endswith(f"({WORKER_UNREACHABLE})")
    assert 1.0 < delay < 2.0, delay  # the handshake timeout, then the hang-up


async def test_two_calls_in_one_worker_keep_their_own_audio_and_every_frame(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Two calls streamed from the same SIP worker process (one clock thread, one batched hub loop):
    each voice-worker session hears only its own far end's tone, every chunk arrives in order with no
    gap, and the worker's echo reaches only the call it came from."""
    chunks: dict[int, list[int]] = {}

    class Counting(ReferenceWorker):
        async def _heard(self, session: WorkerSession, message: dict[str, Any]) -> None:
            chunks.setdefault(id(session), []).append(int(message["media"]["chunk"]))
            await super()._heard(session, message)

    server = Counting(greeting_seconds=0, echo=True)  # echoes each call's audio back into that call
    await server.start()
    try:
        far = await gateway()
        far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
        agent = uuid4()

        async def worker_urls(agent_id: UUID) -> str | None:
            return server.url if agent_id == agent else None

        near = await gateway(worker_urls=worker_urls)
        trunk = near.trunk(far.port)
        requests = [replace(near.request(trunk, to=NUMBER), agent_id=agent) for _ in range(2)]
        tones = (440.0, 1000.0)
        recordings = [tmp_path / "far0.wav", tmp_path / "far1.wav"]
        for index, request in enumerate(requests):
            await near.gateway.place(request)
            answered = await until(
                lambda n=index + 1: [e for e in far.inbound if isinstance(e, InboundAnswered)][n - 1 :], 5
            )
            far_call = answered[0].call_id
            assert far.gateway.record(far_call, str(recordings[index]))
            wav = write_wav(tmp_path / f"tone{index}.wav", tone(tones[index], 3.0))
            assert far.gateway.play(far_call, wav)
        await until(lambda: len([s for s in server.sessions if s.media_frames >= 100]) == 2, 10)
        for request in requests:
            await near.gateway.hangup(request.attempt_id)
        for request in requests:
            assert (await near.ended(request.attempt_id)).confirmed
    finally:
        await server.stop()
    heard_tones = set()
    for session in server.sessions:
        heard = bytes(session.heard[-RATE:])  # the last 0.5 s
        loud = [hz for hz in tones if level(heard, hz) > 0.3]
        quiet = [hz for hz in tones if level(heard, hz) < 0.05]
        assert len(loud) == 1 and len(quiet) == 1, [level(heard, hz) for hz in tones]
        heard_tones.add(loud[0])
        numbers = chunks[id(session)]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "a chunk was lost or reordered"
    assert heard_tones == set(tones)
    for path, (own, other) in zip(recordings, (tones, tones[::-1]), strict=True):
        far_heard = await read_wav(path)
        assert max(far_heard.windows(own)) > 0.3, far_heard.windows(own)
        assert max(far_heard.windows(other)) < 0.05, far_heard.windows(other)
