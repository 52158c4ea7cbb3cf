"""A reference voice worker speaking the Twilio Media Streams format the gateway streams calls in.

It plays a greeting (a generated tone), then echoes what it hears, asks for a transfer on DTMF ``0``
and hangs up on ``9``. Run it with ``python -m sip.reference_worker --port 8765`` and point an agent's
worker URL at ``ws://HOST:8765``; tests use ``ReferenceWorker`` as an asyncio server that records what
each call sent and lets the test speak for the worker (``WorkerSession.send_*``). No pjsua2 here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import WebSocketException

from sip.audio import FRAME_SAMPLES, tone, ulaw_decode, ulaw_encode

log = logging.getLogger(__name__)

GREETING_MARK = "greeting"
MAX_HEARD_SECONDS = 120  # what a session keeps of the call's audio


@dataclass
class WorkerSession:
    """One call as the worker saw it: the messages that came, the audio heard, the marks echoed."""

    ws: ServerConnection
    start: dict[str, Any] | None = None
    stream_sid: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)  # every message except media
    media_frames: int = 0
    heard: bytearray = field(default_factory=bytearray)  # 16-bit PCM, decoded from mu-law
    digits: list[str] = field(default_factory=list)
    marks: list[tuple[str, float]] = field(default_factory=list)  # echoed mark names, monotonic time
    stopped: bool = False
    closed: bool = False

    async def send(self, event: str, **body: Any) -> None:
        await self.ws.send(json.dumps({"event": event, "streamSid": self.stream_sid, **body}))

    async def send_audio(self, pcm: bytes) -> None:
        """16-bit 8 kHz PCM as mu-law media messages of 20 ms each (sent at once: the gateway paces)."""
        ulaw = ulaw_encode(pcm)
        for at in range(0, len(ulaw), FRAME_SAMPLES):
            payload = base64.b64encode(ulaw[at : at + FRAME_SAMPLES]).decode()
            await self.send("media", media={"payload": payload})

    async def send_mark(self, name: str) -> None:
        await self.send("mark", mark={"name": name})

    async def send_clear(self) -> None:
        await self.send("clear")

    async def send_transfer(self, to: str, mode: str = "auto") -> None:
        await self.send("transfer", transfer={"to": to, "mode": mode})

    async def send_hangup(self, reason: str) -> None:
        await self.send("hangup", hangup={"reason": reason})

    def mark_names(self) -> list[str]:
        return [name for name, _ in self.marks]


class ReferenceWorker:
    """The reference worker as an asyncio WebSocket server; ``sessions`` records every call.

    ``greeting_hz``/``greeting_seconds``: the tone played first (0 s: none). ``echo``: send back what
    is heard once the greeting has played. ``transfer_to``: where DTMF ``0`` asks to transfer.
    """

    def __init__(
        self,
        *,
        greeting_hz: float = 440.0,
        greeting_seconds: float = 1.0,
        echo: bool = True,
        transfer_to: str = "+14155550100",
    ) -> None:
        self.greeting_hz = greeting_hz
        self.greeting_seconds = greeting_seconds
        self.echo = echo
        self.transfer_to = transfer_to
        self.sessions: list[WorkerSession] = []
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (``port`` 0: any free port); returns the ws:// URL."""
        self._server = await serve(self._serve, host, port, compression=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def _serve(self, ws: ServerConnection) -> None:
        session = WorkerSession(ws)
        self.sessions.append(session)
        try:
            async for raw in ws:
                await self._handle(session, raw)
        except WebSocketException:
            pass
        finally:
            session.closed = True

    async def _handle(self, session: WorkerSession, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            event = message["event"]
        except (ValueError, TypeError, KeyError):
            return
        if event != "media":
            session.events.append(message)
        if event == "start":
            session.start = message.get("start") or {}
            session.stream_sid = str(message.get("streamSid") or session.start.get("streamSid", ""))
            if self.greeting_seconds > 0:
                await session.send_audio(tone(self.greeting_hz, self.greeting_seconds))
            await session.send_mark(GREETING_MARK)
        elif event == "media":
            await self._heard(session, message)
        elif event == "mark":
            session.marks.append((str(message.get("mark", {}).get("name")), time.monotonic()))
        elif event == "dtmf":
            digit = str(message.get("dtmf", {}).get("digit", ""))
            session.digits.append(digit)
            if digit == "0":
                await session.send_transfer(self.transfer_to)
            elif digit == "9":
                await session.send_hangup("the caller asked to end the call")
        elif event == "stop":
            session.stopped = True

    async def _heard(self, session: WorkerSession, message: dict[str, Any]) -> None:
        try:
            payload = message["media"]["payload"]
            ulaw = base64.b64decode(payload, validate=True)
        except (KeyError, TypeError, binascii.Error):
            return
        session.media_frames += 1
        if len(session.heard) < MAX_HEARD_SECONDS * 16000:
            session.heard += ulaw_decode(ulaw)
        if self.echo and GREETING_MARK in session.mark_names():
            await session.send("media", media={"payload": payload})


async def _main(args: argparse.Namespace) -> None:
    worker = ReferenceWorker(
        greeting_hz=args.greeting_hz,
        greeting_seconds=args.greeting_seconds,
        echo=not args.no_echo,
        transfer_to=args.transfer_to,
    )
    await worker.start(args.host, args.port)
    log.info("reference voice worker on ws://%s:%d", args.host, worker.port)
    try:
        await asyncio.Event().wait()
    finally:
        await worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--greeting-hz", type=float, default=440.0)
    parser.add_argument("--greeting-seconds", type=float, default=1.0)
    parser.add_argument("--no-echo", action="store_true", help="do not echo what the caller says")
    parser.add_argument("--transfer-to", default="+14155550100", help="where DTMF 0 asks to transfer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
