"""Answering-machine detection through real SIP: a second pjsua2 endpoint answers and plays a
voicemail greeting with its beep, or a person's short "Hello?" (espeak-ng WAVs in fixtures/, 8 kHz).

A greeting + beep ends as ``voicemail`` with ``answered_by`` machine_end_beep, and the machine is hung
up on, or gets the message (fetched over HTTP) played after the beep, which the far end records.
"Hello?" goes to the voice worker with ``answered_by`` human in ``start.customParameters``.
"""

from __future__ import annotations

import threading
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from dialer.dispatch import end_outcome
from dialer.domain import AmdSettings
from dialer.metrics import abandoned
from dialer.outcome import Outcome
from dialer.ports import CallAnswered
from dialer.webhook_targets import WebhookTargets
from sip.amd_media import MACHINE_HANGUP, MESSAGE_LEFT
from sip.amd_message import MessageCache
from sip.audio import RATE, level, tone
from sip.events import BridgeEvent, InboundAnswered, InboundRoute, WorkerConnected, WorkerMissing
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import GatewayFactory, Harness, until

pytestmark = pytest.mark.timeout(60)

NUMBER = "+14155550199"  # the far end's imported number
FIXTURES = Path(__file__).parent / "fixtures"
VOICEMAIL = FIXTURES / "amd_voicemail.wav"  # 0.3 s, 3.7 s of greeting, 0.5 s, 1 kHz beep 0.5 s, 1 s
HELLO = FIXTURES / "amd_hello.wav"  # 0.3 s, "Hello?" (0.4 s), 0.3 s
MESSAGE_HZ = 600


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def message_url(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving ``message.wav``: 1.5 s of 600 Hz."""
    folder = tmp_path / "www"
    folder.mkdir()
    with wave.open(str(folder / "message.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(tone(MESSAGE_HZ, 1.5, 0.5))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/message.wav"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def worker() -> AsyncIterator[ReferenceWorker]:
    server = ReferenceWorker(greeting_seconds=0, echo=False)
    await server.start()
    yield server
    await server.stop()


async def far_and_near(
    gateway: GatewayFactory, tmp_path: Path, worker: ReferenceWorker | None = None
) -> tuple[Harness, Harness, UUID]:
    far = await gateway()  # the callee's phone: answers calls to NUMBER
    far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
    agent = uuid4()

    async def worker_urls(agent_id: UUID) -> str | None:
        return worker.url if worker is not None and agent_id == agent else None

    messages = MessageCache(tmp_path / "messages", WebhookTargets(allow_private=True))
    near = await gateway(worker_urls=worker_urls, amd_messages=messages)
    return far, near, agent


async def answer_and_play(far: Harness, wav: Path, recording: Path) -> UUID:
    """The far end's answered call plays ``wav`` once and records what it hears."""
    answered = await until(lambda: next((e for e in far.inbound if isinstance(e, InboundAnswered)), None), 5)
    assert far.gateway.record(answered.call_id, str(recording))
    assert far.gateway.play(answered.call_id, str(wav), once=True)
    return answered.call_id


async def recorded(path: Path, within: float = 5.0) -> tuple[int, bytes]:
    def read() -> tuple[int, bytes] | None:
        try:
            with wave.open(str(path), "rb") as wav:
                pcm = wav.readframes(wav.getnframes())
                return (wav.getframerate(), pcm) if pcm else None
        except (OSError, EOFError, wave.Error):
            return None

    result: tuple[int, bytes] = await until(read, within)
    return result


async def test_a_voicemail_with_a_beep_is_hung_up_on(
    gateway: GatewayFactory, tmp_path: Path, worker: ReferenceWorker
) -> None:
    far, near, agent = await far_and_near(gateway, tmp_path, worker)
    bridge: list[BridgeEvent] = []
    near.gateway.on_bridge = bridge.append
    amd = AmdSettings("detect_and_wait_for_beep", timeout_seconds=20, on_machine="hangup")
    request = replace(near.request(near.trunk(far.port), to=NUMBER), amd=amd, agent_id=agent)
    await near.gateway.place(request)
    await answer_and_play(far, VOICEMAIL, tmp_path / "far.wav")
    ended = await near.ended(request.attempt_id, within=15)
    assert ended.confirmed and ended.answered_by == "machine_end_beep"
    assert ended.reason is not None and MACHINE_HANGUP in ended.reason
    assert end_outcome(ended) is Outcome.VOICEMAIL
    assert ended.amd_seconds is not None and 1.5 <= ended.amd_seconds <= 4.0  # machine_start: in the greeting
    far_ended = await far.inbound_ended()
    assert far_ended.confirmed  # the far end got our BYE
    # Hung up right after the beep (~5 s into the greeting's WAV), not at its end or the timeout.
    assert ended.answered_at is not None
    assert (ended.at - ended.answered_at).total_seconds() < 8
    # The voice worker never had the machine's call, and it is no abandoned call either.
    assert worker.sessions == []
    assert not any(isinstance(e, WorkerMissing | WorkerConnected) for e in bridge), bridge


async def test_a_message_is_left_after_the_beep(
    gateway: GatewayFactory, tmp_path: Path, message_url: str
) -> None:
    far, near, _ = await far_and_near(gateway, tmp_path)
    amd = AmdSettings("detect", on_machine="leave_message", message_url=message_url)  # waits for the end
    request = replace(near.request(near.trunk(far.port), to=NUMBER), amd=amd)
    await near.gateway.place(request)
    recording = tmp_path / "far.wav"
    await answer_and_play(far, VOICEMAIL, recording)
    ended = await near.ended(request.attempt_id, within=20)
    assert ended.answered_by == "machine_end_beep"
    assert ended.reason is not None and MESSAGE_LEFT in ended.reason
    assert end_outcome(ended) is Outcome.VOICEMAIL
    await far.inbound_ended()
    rate, pcm = await recorded(recording)
    window = int(rate * 0.2) * 2
    levels = [
        level(pcm[at : at + window], MESSAGE_HZ, rate) for at in range(0, len(pcm) - window + 1, window)
    ]
    loud = [i for i, value in enumerate(levels) if value > 0.2]
    assert len(loud) >= 6, levels  # at least 1.2 s of the 1.5 s message reached the far end
    beep_end = 5.3  # seconds into the far end's WAV (its recording began as it started playing)
    assert loud[0] * 0.2 >= beep_end - 0.4, (loud[0], levels)  # not over the greeting


async def test_a_person_saying_hello_goes_to_the_worker_as_human(
    gateway: GatewayFactory, tmp_path: Path, worker: ReferenceWorker
) -> None:
    far, near, agent = await far_and_near(gateway, tmp_path, worker)
    bridge: list[BridgeEvent] = []
    near.gateway.on_bridge = bridge.append
    amd = AmdSettings("detect_and_wait_for_beep", on_machine="hangup")
    request = replace(near.request(near.trunk(far.port), to=NUMBER), amd=amd, agent_id=agent)
    await near.gateway.place(request)
    await answer_and_play(far, HELLO, tmp_path / "far.wav")
    session = await until(lambda: next((s for s in worker.sessions if s.start is not None), None), 10)
    assert session.start["customParameters"]["answered_by"] == "human"
    # The abandonment clock starts at the end of the person's "Hello?", not at the answer (Ofcom's rule
    # for calls with AMD): the worker took the call within 2 s of it, though > 1.2 s after the answer.
    joined = await until(lambda: next((e for e in bridge if isinstance(e, WorkerConnected)), None), 5)
    answered = await until(lambda: next((e for e in near.events if isinstance(e, CallAnswered)), None), 1)
    assert (joined.answered_at - answered.at).total_seconds() > 0.3  # the greeting ended after the answer
    assert (joined.at - answered.at).total_seconds() > 1.2  # "Hello?" ends ~0.7 s in, + 0.8 s of silence
    assert not abandoned(joined.answered_at, joined.at)
    await near.gateway.hangup(request.attempt_id)
    ended = await near.ended(request.attempt_id)
    assert ended.confirmed and ended.answered_by == "human"
    assert end_outcome(ended) is Outcome.ANSWERED
    await far.inbound_ended()


async def test_an_asynchronous_worker_gets_the_call_at_once_and_the_verdict_as_an_event(
    gateway: GatewayFactory, tmp_path: Path, worker: ReferenceWorker
) -> None:
    far, near, agent = await far_and_near(gateway, tmp_path, worker)
    amd = AmdSettings("detect_and_wait_for_beep", asynchronous=True, on_machine="worker")
    request = replace(near.request(near.trunk(far.port), to=NUMBER), amd=amd, agent_id=agent)
    await near.gateway.place(request)
    await answer_and_play(far, VOICEMAIL, tmp_path / "far.wav")
    session = await until(lambda: next((s for s in worker.sessions if s.start is not None), None), 5)
    assert "answered_by" not in session.start["customParameters"]  # it had the call before any verdict

    def verdicts() -> list[str]:
        return [e["amd"]["answered_by"] for e in session.events if e.get("event") == "amd"]

    await until(lambda: len(verdicts()) >= 2, 15)
    assert verdicts() == ["machine_start", "machine_end_beep"]
    await near.gateway.hangup(request.attempt_id)
    ended = await near.ended(request.attempt_id)
    assert ended.answered_by == "machine_end_beep" and end_outcome(ended) is Outcome.VOICEMAIL
    await far.inbound_ended()


async def test_a_machine_given_to_the_worker_comes_after_the_beep_with_its_verdict(
    gateway: GatewayFactory, tmp_path: Path, worker: ReferenceWorker
) -> None:
    far, near, agent = await far_and_near(gateway, tmp_path, worker)
    amd = AmdSettings("detect_and_wait_for_beep", on_machine="worker")
    request = replace(near.request(near.trunk(far.port), to=NUMBER), amd=amd, agent_id=agent)
    await near.gateway.place(request)
    await answer_and_play(far, VOICEMAIL, tmp_path / "far.wav")
    session = await until(lambda: next((s for s in worker.sessions if s.start is not None), None), 15)
    assert session.start["customParameters"]["answered_by"] == "machine_end_beep"
    assert not any(e.get("event") == "amd" for e in session.events)  # told in start, not as events
    await near.gateway.hangup(request.attempt_id)
    ended = await near.ended(request.attempt_id)
    assert ended.answered_by == "machine_end_beep" and end_outcome(ended) is Outcome.VOICEMAIL
    await far.inbound_ended()
