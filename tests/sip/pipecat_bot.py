"""A pipecat bot written for Twilio, as pipecat's Twilio examples write one: a FastAPI WebSocket route,
``parse_telephony_websocket``, ``TwilioFrameSerializer`` and ``FastAPIWebsocketTransport``, unchanged.

Only its configuration points at the dialer instead of Twilio: ``base_url`` (the serializer's
documented override of the REST host) is our API, ``account_sid`` the tenant id and ``auth_token`` a
secret API key. The bot says a 440 Hz tone, listens, and once it has heard its tone come back (the
callee echoes) it ends the pipeline with an ``EndFrame``: the serializer hangs the call up through our
Twilio-compatible route. ``BotReport`` keeps what it heard for the test.
"""

from __future__ import annotations

import asyncio
import math
import struct
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from fastapi import FastAPI, WebSocket
from pipecat.frames.frames import EndWorkerFrame, Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

RATE = 8000
TONE_HZ = 440
LOUD_RMS = 1000  # a 440 Hz tone at amplitude 8000 has an RMS of ~5600; line noise is far below
HEARD_ENOUGH = 25  # 20 ms frames of the tone (0.5 s of the echo) before the bot hangs up


@dataclass
class BotReport:
    """What the bot saw of its call."""

    call_data: dict[str, Any] = field(default_factory=dict)
    frames_in: int = 0
    tone_frames: int = 0  # frames that carried the bot's own tone back
    hung_up_at: datetime | None = None  # when the bot decided to end the call
    ended: asyncio.Event = field(default_factory=asyncio.Event)


def tone(seconds: float, amplitude: int = 8000) -> bytes:
    count = int(RATE * seconds)
    return struct.pack(
        f"<{count}h", *(int(amplitude * math.sin(2 * math.pi * TONE_HZ * i / RATE)) for i in range(count))
    )


def is_tone(pcm: bytes) -> bool:
    """Loud, with the zero crossings of a 440 Hz sine (880 a second, give or take a quarter): the
    bot's own tone, not noise or some other sound."""
    samples = array("h", pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return False
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    crossings = sum((a < 0) != (b < 0) for a, b in pairwise(samples))
    per_second = crossings * RATE / len(samples)
    return rms > LOUD_RMS and 0.75 * 2 * TONE_HZ < per_second < 1.25 * 2 * TONE_HZ


class EchoListener(FrameProcessor):
    """Counts the caller's audio and ends the call once the bot's own tone has come back."""

    def __init__(self, report: BotReport) -> None:
        super().__init__()
        self.report = report
        self.hanging_up = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.report.frames_in += 1
            if is_tone(frame.audio):
                self.report.tone_frames += 1
            if self.report.tone_frames >= HEARD_ENOUGH and not self.hanging_up:
                self.hanging_up = True
                self.report.hung_up_at = datetime.now(UTC)
                # The bot is done: the worker sends an EndFrame down the pipeline, the serializer hangs up.
                await self.push_frame(EndWorkerFrame(), FrameDirection.UPSTREAM)
            return
        await self.push_frame(frame, direction)


def bot_app(report: BotReport, *, api_base: str, account_sid: str, auth_token: str) -> FastAPI:
    """The bot's web app; ``api_base`` etc. are what a Twilio bot reads from TWILIO_* settings."""
    app = FastAPI()

    @app.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        _transport_type, call_data = await parse_telephony_websocket(websocket)
        report.call_data = call_data.model_dump()
        serializer = TwilioFrameSerializer(
            stream_sid=call_data.stream_id,
            call_sid=call_data.call_id,
            account_sid=account_sid,
            auth_token=auth_token,
            base_url=api_base,
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, serializer=serializer),
        )
        task = PipelineWorker(
            Pipeline([transport.input(), EchoListener(report), transport.output()]),
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        )

        @transport.event_handler("on_client_connected")
        async def greet(_transport: object, _client: object) -> None:
            await task.queue_frame(OutputAudioRawFrame(tone(3.0), RATE, 1))

        try:
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(task)
            await runner.run()
        finally:
            report.ended.set()

    return app
