"""The voice-worker bridge inside a SIP worker process: one WebSocket per answered call, Twilio Media Streams.

No pjsua2 here. The media port of a call (sip/media.py) runs on pjsua's clock thread and only hands
over bytes: ``StreamSession.feed`` for what the call hears, ``Playout.next_frame`` for what it plays.
Everything else happens on the ``StreamHub``'s own asyncio loop thread. What the SIP thread must act
on (a hang-up, a transfer request, a lost worker) comes back as a ``StreamRequest`` through the
hub's ``on_request`` callback, which must be thread-safe (the worker puts it on its command queue).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from sip.audio import RATE, ulaw_decode, ulaw_encode
from sip.protocol import StreamSpec

log = logging.getLogger(__name__)

CONNECT_SECONDS = 1.5  # TCP + WebSocket handshake; with the hang-up, a dead worker ends the call in < 2 s
PING_SECONDS = 5.0  # keep-alive: a worker that stops answering pings for PING_SECONDS is dropped
CLOSE_SECONDS = 1.0  # how long ``stop`` and the closing handshake may take once the call is over
FRAME_BYTES = 2 * RATE * 20 // 1000  # 320: one 20 ms PCM frame
MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}
TRANSFER_MODES = ("auto", "refer", "bridge")
WORKER_UNREACHABLE = "voice worker unreachable"
WORKER_DISCONNECTED = "voice worker disconnected"
WORKER_HANGUP = "voice worker hangup"


@dataclass(frozen=True)
class StreamRequest:
    """What a call's stream asks of the SIP thread: ``hangup`` (with why), ``lost`` or ``transfer``."""

    key: int
    action: str
    reason: str | None = None
    to: str = ""
    mode: str = "auto"


class Playout:
    """PCM the voice worker sent, waiting to be played into the call, with its marks; thread-safe.

    The clock thread takes one frame per tick (``next_frame``). A mark is reached when all audio
    queued before it has been handed to the call; ``clear`` drops the audio and returns the marks
    dropped with it (echoed at once, as Twilio does).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # never held around a pjsua2 call
        self._items: deque[bytes | str] = deque()  # PCM chunks and mark names, in order
        self._due: list[str] = []  # marks crossed inside the last frame: reached after it played

    def add_audio(self, pcm: bytes) -> None:
        if pcm:
            with self._lock:
                self._items.append(pcm)

    def add_mark(self, name: str) -> None:
        with self._lock:
            self._items.append(name)

    def clear(self) -> list[str]:
        with self._lock:
            marks = self._due + [item for item in self._items if isinstance(item, str)]
            self._items.clear()
            self._due = []
        return marks

    def queued(self) -> int:
        """PCM bytes waiting (for tests and metrics)."""
        with self._lock:
            return sum(len(item) for item in self._items if isinstance(item, bytes))

    def next_frame(self, size: int = FRAME_BYTES) -> tuple[bytes | None, list[str]]:
        """The next ``size`` bytes to play (None: nothing queued) and the marks reached by now."""
        with self._lock:
            items, reached = self._items, self._due
            self._due = []
            while items and isinstance(head := items[0], str):
                items.popleft()
                reached.append(head)  # the audio before it went out on an earlier tick
            if not items:
                return None, reached
            chunks: list[bytes] = []
            need = size
            while items and need:
                head = items.popleft()
                if isinstance(head, str):
                    self._due.append(head)
                elif len(head) <= need:
                    chunks.append(head)
                    need -= len(head)
                else:
                    chunks.append(head[:need])
                    items.appendleft(head[need:])
                    need = 0
        if need:
            chunks.append(bytes(need))  # the worker's audio ended mid-frame: pad with silence
        return b"".join(chunks), reached


class StreamSession:
    """One call's WebSocket to its voice worker; thread-safe entry points, the rest on the hub loop."""

    def __init__(self, hub: StreamHub, key: int, spec: StreamSpec, playout: Playout) -> None:
        self.hub = hub
        self.key = key
        self.spec = spec
        self.playout = playout
        self.stream_sid = f"MZ{uuid.uuid4().hex}"
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()  # made here; only used on the hub loop
        self._started = False
        self._closing = False
        self._sequence = 0
        self._chunk = 0

    # ---- from other threads ------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """One 20 ms frame the call heard (clock thread)."""
        self.hub.call(self._audio, pcm)

    def marks_played(self, names: list[str]) -> None:
        """Marks whose audio has been handed to the call (clock thread)."""
        self.hub.call(self._echo_marks, names)

    def dtmf(self, digit: str) -> None:
        """An RFC 2833 digit from the far end (SIP thread)."""
        self.hub.call(self._send, "dtmf", {"dtmf": {"track": "inbound_track", "digit": digit}})

    def transfer_failed(self, code: int | None, reason: str) -> None:
        """The transfer the worker asked for failed; the call stays with it (SIP thread).

        An extension event like ``transfer``: ``{"event": "transfer_failed", "transfer_failed":
        {"code": 486, "reason": "..."}}``; the reason never names the number.
        """
        self.hub.call(self._extension, "transfer_failed", {"code": code, "reason": reason})

    def close(self) -> None:
        """The call is over: send ``stop`` and close (SIP thread)."""
        self.hub.call(self._finish)

    # ---- on the hub loop -----------------------------------------------------------------------

    async def run(self) -> None:
        reason = None
        try:
            ws = await connect(
                self.spec.url,
                open_timeout=CONNECT_SECONDS,
                ping_interval=PING_SECONDS,
                ping_timeout=PING_SECONDS,
                close_timeout=CLOSE_SECONDS,
                compression=None,  # 160-byte frames: deflate costs CPU and buys nothing
                proxy=None,
                ssl=ssl.create_default_context() if self.spec.url.startswith("wss:") else None,
            )
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            log.warning("call %d: %s (%s)", self.key, WORKER_UNREACHABLE, type(exc).__name__)
            reason = WORKER_UNREACHABLE
        else:
            if self._closing:  # the call ended while we were connecting
                with contextlib.suppress(WebSocketException, OSError):
                    await ws.close()
                return
            reason = await self._talk(ws)
        if reason is not None and not self._closing:
            self.hub.on_request(StreamRequest(self.key, "lost", reason))

    async def _talk(self, ws: ClientConnection) -> str | None:
        writer = asyncio.create_task(self._write(ws))
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "accountSid": self.spec.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.spec.call_sid,
            "tracks": ["inbound"],
            "customParameters": self.spec.parameters,
            "mediaFormat": MEDIA_FORMAT,
        }
        self._send("start", {"start": start})
        self._started = True
        try:
            async for message in ws:
                self._handle(message)
        except WebSocketException:
            pass
        finally:
            if self._closing:
                with contextlib.suppress(TimeoutError, WebSocketException, OSError):
                    await asyncio.wait_for(writer, CLOSE_SECONDS)  # ``stop`` goes out before we close
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                await writer
        if self._closing:
            return None
        log.warning("call %d: %s (close code %s)", self.key, WORKER_DISCONNECTED, ws.close_code)
        return WORKER_DISCONNECTED

    async def _write(self, ws: ClientConnection) -> None:
        while (text := await self._queue.get()) is not None:
            await ws.send(text)
        await ws.close()

    def _send(self, event: str, body: dict[str, Any]) -> None:
        self._sequence += 1
        message = {
            "event": event,
            "sequenceNumber": str(self._sequence),
            "streamSid": self.stream_sid,
            **body,
        }
        self._queue.put_nowait(json.dumps(message, separators=(",", ":")))

    def _audio(self, pcm: bytes) -> None:
        if not self._started or self._closing:
            return  # still connecting, or over: Twilio too sends media only between start and stop
        self._chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self._chunk),
            "timestamp": str((self._chunk - 1) * 20),
            "payload": base64.b64encode(ulaw_encode(pcm)).decode(),
        }
        self._send("media", {"media": media})

    def _echo_marks(self, names: list[str]) -> None:
        if self._started and not self._closing:
            for name in names:
                self._send("mark", {"mark": {"name": name}})

    def _extension(self, event: str, body: dict[str, Any]) -> None:
        if self._started and not self._closing:
            self._send(event, {event: body})

    def _finish(self) -> None:
        if self._closing:
            return
        if self._started:
            self._send("stop", {"stop": {"accountSid": self.spec.account_sid, "callSid": self.spec.call_sid}})
        self._closing = True
        self._queue.put_nowait(None)

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            event = message["event"]
        except (ValueError, TypeError, KeyError):
            log.debug("call %d: dropped a malformed message from the voice worker", self.key)
            return
        if event == "media":
            try:
                payload = base64.b64decode(message["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                return
            self.playout.add_audio(ulaw_decode(payload))
        elif event == "mark":
            name = (message.get("mark") or {}).get("name")
            if isinstance(name, str):
                self.playout.add_mark(name)
        elif event == "clear":
            self._echo_marks(self.playout.clear())
        elif event in ("transfer", "hangup"):
            self._request(event, {**message, **(message.get(event) or {})})

    def _request(self, event: str, body: dict[str, Any]) -> None:
        if event == "hangup":
            reason = body.get("reason")
            self.hub.on_request(StreamRequest(self.key, "hangup", str(reason) if reason else None))
            return
        to, mode = body.get("to"), body.get("mode") or "auto"
        if not isinstance(to, str) or not to or mode not in TRANSFER_MODES:
            log.warning("call %d: malformed transfer request from the voice worker", self.key)
            return
        self.hub.on_request(StreamRequest(self.key, "transfer", to=to, mode=mode))


class StreamHub:
    """The asyncio loop thread of one SIP worker process, running every call's ``StreamSession``."""

    def __init__(self, on_request: Callable[[StreamRequest], None]) -> None:
        self.on_request = on_request
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="streams", daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` on the hub loop, from any thread; dropped once the hub stopped."""
        with contextlib.suppress(RuntimeError):  # loop closed
            self.loop.call_soon_threadsafe(function, *args)

    def open(self, key: int, spec: StreamSpec, playout: Playout) -> StreamSession:
        """Start streaming call ``key`` (any thread); the session connects on the hub loop."""
        session = StreamSession(self, key, spec, playout)
        self.call(self._spawn, session)
        return session

    def _spawn(self, session: StreamSession) -> None:
        task = self.loop.create_task(session.run())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a stream session failed", exc_info=task.exception())

    def stop(self, within: float = CLOSE_SECONDS + 0.5) -> None:
        """Let closing sessions send ``stop`` (bounded), then end the loop thread."""
        if not self._thread.is_alive():
            return

        async def drain() -> None:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=within)
            for task in self._tasks:
                task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(drain(), self.loop).result(within + 1.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(within)
