"""Call recordings against real peers: the SIP worker writes a two-channel WAV, callee left, worker right.

The callee is another gateway's pjsua2 worker answering an imported number and playing a 440 Hz tone;
the voice worker speaks 1 kHz: a ``ReferenceWorker`` over WebSocket (streamed call), or a third gateway's
pjsua2 worker reached by a SIP URI (bridged call, two recorders on the conference bridge). Each channel
of the recording must hold its own party's tone and not the other's (Goertzel filter, ``sip.audio.level``).
"""

from __future__ import annotations

import asyncio
import wave
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import pytest

from sip.audio import level, tone
from sip.events import InboundAnswered, InboundRoute, RecordingMade
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import GatewayFactory, Harness, until
from tests.sip.test_sip_worker import BOT, NUMBER, sip_worker, three_way, write_wav

pytestmark = pytest.mark.timeout(60)

CALLEE_HZ, WORKER_HZ = 440.0, 1000.0


def channels(path: Path) -> tuple[int, bytes, bytes]:
    """(rate, left PCM, right PCM) of a two-channel 16-bit WAV."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    left = bytearray(len(frames) // 2)
    right = bytearray(len(frames) // 2)
    left[0::2], left[1::2] = frames[0::4], frames[1::4]
    right[0::2], right[1::2] = frames[2::4], frames[3::4]
    return rate, bytes(left), bytes(right)


def windows(pcm: bytes, hz: float, rate: int, seconds: float = 0.2) -> list[float]:
    size = int(rate * seconds) * 2
    return [level(pcm[at : at + size], hz, rate) for at in range(0, len(pcm) - size + 1, size)]


def assert_two_parties(path: Path) -> None:
    """Left holds the callee's 440 Hz and not the worker's 1 kHz; right the other way round."""
    rate, left, right = channels(path)
    assert rate == 8000
    callee_left = [x for x in windows(left, CALLEE_HZ, rate) if x > 0.3]
    worker_right = [x for x in windows(right, WORKER_HZ, rate) if x > 0.3]
    assert len(callee_left) >= 8, windows(left, CALLEE_HZ, rate)  # 1.6 s of the callee's tone
    assert len(worker_right) >= 8, windows(right, WORKER_HZ, rate)  # and of the worker's
    assert max(windows(left, WORKER_HZ, rate)) < 0.05, "the worker is not on the callee's channel"
    assert max(windows(right, CALLEE_HZ, rate)) < 0.05, "the callee is not on the worker's channel"
    print(f"left {max(callee_left):.3f} at 440 Hz, right {max(worker_right):.3f} at 1 kHz")


async def made(harness: Harness, recordings: list[RecordingMade], within: float = 10.0) -> RecordingMade:
    found: RecordingMade = await until(lambda: recordings[0] if recordings else None, within)
    return found


async def test_streamed_call_is_recorded_callee_left_worker_right(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    worker = ReferenceWorker(greeting_seconds=3.0, echo=False)
    worker.greeting_hz = WORKER_HZ
    await worker.start()
    try:
        far = await gateway()
        far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
        agent = uuid4()

        async def worker_urls(agent_id: object) -> str | None:
            return worker.url if agent_id == agent else None

        near = await gateway(worker_urls=worker_urls, recordings_dir=tmp_path / "rec")
        recordings: list[RecordingMade] = []
        near.gateway.on_recording = recordings.append
        request = replace(near.request(near.trunk(far.port), to=NUMBER), agent_id=agent, record=True)
        await near.gateway.place(request)
        answered = await until(
            lambda: next((e for e in far.inbound if isinstance(e, InboundAnswered)), None), 5
        )
        assert far.gateway.play(answered.call_id, write_wav(tmp_path / "a440.wav", tone(CALLEE_HZ, 2.5)))
        await asyncio.sleep(2.5)
        await near.gateway.hangup(request.attempt_id)
        assert (await near.ended(request.attempt_id)).confirmed
        recording = await made(near, recordings)
    finally:
        await worker.stop()
    expected = tmp_path / "rec" / str(request.tenant_id) / f"{request.attempt_id}.wav"
    assert (recording.call_id, recording.tenant_id, recording.error) == (
        request.attempt_id,
        request.tenant_id,
        "",
    )
    assert Path(recording.path) == expected.resolve()
    assert 2.0 < recording.seconds < 4.0, recording.seconds
    assert_two_parties(expected)


async def test_bridged_sip_worker_call_is_recorded_from_two_bridge_recorders(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    call = await three_way(gateway)
    agent = next(iter(call.near.routes.values())).agent_id
    # The near gateway of three_way records nothing: a second one, same bot, records into tmp_path.
    near = await gateway(
        worker_urls=sip_worker(agent, f"sip:{BOT}@127.0.0.1:{call.bot.port}"), recordings_dir=tmp_path / "rec"
    )
    recordings: list[RecordingMade] = []
    near.gateway.on_recording = recordings.append
    request = replace(near.request(near.trunk(call.far.port), to=NUMBER), agent_id=agent, record=True)
    await near.gateway.place(request)
    callee = await call.answered(call.far)
    bot = await call.answered(call.bot)
    assert call.far.gateway.play(callee.call_id, write_wav(tmp_path / "a440.wav", tone(CALLEE_HZ, 2.5)))
    assert call.bot.gateway.play(bot.call_id, write_wav(tmp_path / "a1k.wav", tone(WORKER_HZ, 2.5)))
    await asyncio.sleep(2.5)
    await near.gateway.hangup(request.attempt_id)
    assert (await near.ended(request.attempt_id)).confirmed
    recording = await made(near, recordings)
    assert recording.error == "" and recording.call_id == request.attempt_id
    path = Path(recording.path)
    assert_two_parties(path)
    assert not list(path.parent.glob("*.callee.wav")), "the mono parts are merged and gone"


async def test_a_call_not_asked_to_be_recorded_writes_nothing(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    worker = ReferenceWorker(greeting_seconds=0.5, echo=False)
    await worker.start()
    try:
        far = await gateway()
        far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
        agent = uuid4()

        async def worker_urls(agent_id: object) -> str | None:
            return worker.url if agent_id == agent else None

        near = await gateway(worker_urls=worker_urls, recordings_dir=tmp_path / "rec")
        recordings: list[RecordingMade] = []
        near.gateway.on_recording = recordings.append
        request = replace(near.request(near.trunk(far.port), to=NUMBER), agent_id=agent)
        await near.gateway.place(request)
        await until(lambda: next((e for e in far.inbound if isinstance(e, InboundAnswered)), None), 5)
        await asyncio.sleep(0.5)
        await near.gateway.hangup(request.attempt_id)
        assert (await near.ended(request.attempt_id)).confirmed
        await asyncio.sleep(0.5)  # a recording would be reported a few clock ticks after the end
    finally:
        await worker.stop()
    assert recordings == [] and not (tmp_path / "rec").exists()
