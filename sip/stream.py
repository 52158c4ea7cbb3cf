"""The voice-worker bridge inside a SIP worker process: one WebSocket per answered call, Twilio Media Streams.

No pjsua2 here. The media port of a call (sip/media.py) runs on pjsua's clock thread and only hands
over bytes: ``StreamSession.feed`` for what the call hears, ``Playout.next_frame`` for what it plays.
Everything else happens on the ``StreamHub``'s own asyncio loop thread. What the SIP thread must act
on or know (a hang-up, a transfer request, a lost worker, the worker taking the call) comes back as a
``StreamRequest`` through the hub's ``on_request`` callback, which must be thread-safe (the worker
puts it on its command queue). A socket that drops may be re-opened (``StreamSpec.reconnects``).
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
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from sip.audio import RATE, ulaw_decode, ulaw_encode
from sip.playout import Playout
from sip.protocol import StreamSpec
from sip.stream_socket import StreamConnection, send_now

log = logging.getLogger(__name__)

CONNECT_SECONDS = 1.5  # TCP + WebSocket handshake; with the hang-up, a dead worker ends the call in < 2 s
RECONNECT_SECONDS = CONNECT_SECONDS  # every re-opening after a drop fits in this: still < 2 s of dead air
NORMAL_CLOSURE = 1000  # the worker closed the socket on purpose: not a drop, never re-opened
PING_SECONDS = 5.0  # keep-alive: a worker that stops answering pings for PING_SECONDS is dropped
CLOSE_SECONDS = 1.0  # how long ``stop`` and the closing handshake may take once the call is over
MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}
TRANSFER_MODES = ("auto", "refer", "bridge")
WORKER_UNREACHABLE = "voice worker unreachable"
WORKER_DISCONNECTED = "voice worker disconnected"
WORKER_HANGUP = "voice worker hangup"
WORKER_CLOSED = "voice worker hung up (closed the stream)"  # a normal closure (1000) by the worker
WORKER_SILENT = "voice worker silent after start (no message, no pong)"
PROOF_SECONDS = 1.5  # a worker silent this long after ``start`` (no message, no pong) has not taken the call


@dataclass(frozen=True)
class StreamRequest:
    """What a call's stream asks of or tells the SIP thread: ``hangup`` (with why), ``lost``,
    ``transfer``, ``opt_out`` (the callee opted out; the call goes on), or ``connected`` (the worker
    has the call: the abandonment clock stops)."""

    key: int
    action: str
    reason: str | None = None
    to: str = ""
    mode: str = "auto"


class StreamSession:
    """One call's WebSocket to its voice worker; thread-safe entry points, the rest on the hub loop."""

    def __init__(self, hub: StreamHub, key: int, spec: StreamSpec, playout: Playout) -> None:
        self.hub = hub
        self.key = key
        self.spec = spec
        self.playout = playout
        self.stream_sid = f"MZ{uuid.uuid4().hex}"
        # epoch: when the worker was proven there after ``start`` (its first message, or its pong)
        self.connected_at: float | None = None
        self._proving: asyncio.Task[None] | None = None
        self._silent = False  # the worker never answered after ``start`` (see _prove)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()  # made here; only used on the hub loop
        self._start_text: str | None = None  # the ``start`` message of the current socket
        self._held: list[str] = []  # digits pressed before ``start`` went out: sent right after it
        self._started = False
        self._closing = False
        self._sequence = 0
        self._chunk = 0

    # ---- from other threads ------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """One 20 ms frame the call heard (clock thread; batched with the other calls' of the tick)."""
        self.hub.call(self._audio, pcm)

    def marks_played(self, names: list[str]) -> None:
        """Marks whose audio has been handed to the call (clock thread; batched like ``feed``)."""
        self.hub.call(self._echo_marks, names)

    def dtmf(self, digit: str) -> None:
        """An RFC 2833 digit from the far end (SIP thread)."""
        self.hub.call(self._digit, digit)

    def transfer_failed(self, code: int | None, reason: str) -> None:
        """The transfer the worker asked for failed; the call stays with it (SIP thread).

        An extension event like ``transfer``: ``{"event": "transfer_failed", "transfer_failed":
        {"code": 486, "reason": "..."}}``; the reason never names the number.
        """
        self.hub.call(self._extension, "transfer_failed", {"code": code, "reason": reason})

    def amd(self, answered_by: str, at_ms: int) -> None:
        """An answering-machine verdict for an asynchronous worker (SIP thread): an extension event
        ``{"event": "amd", "amd": {"answered_by": "machine_start", "detection_ms": 2140}}``."""
        self.hub.call(self._extension, "amd", {"answered_by": answered_by, "detection_ms": at_ms})

    def close(self) -> None:
        """The call is over: send ``stop`` and close (SIP thread)."""
        self.hub.call(self._finish)

    # ---- on the hub loop -----------------------------------------------------------------------

    async def run(self) -> None:
        ws = await self._open(CONNECT_SECONDS)
        reason = WORKER_UNREACHABLE if ws is None else await self._stream(ws)
        if reason is not None and not self._closing:
            self.hub.on_request(StreamRequest(self.key, "lost", reason))

    async def _open(self, within: float) -> ClientConnection | None:
        """A WebSocket to the worker within ``within`` s; None if unreachable or the call ended meanwhile."""
        try:
            ws = await connect(
                self.spec.url,
                open_timeout=within,
                ping_interval=PING_SECONDS,
                ping_timeout=PING_SECONDS,
                close_timeout=CLOSE_SECONDS,
                compression=None,  # 160-byte frames: deflate costs CPU and buys nothing
                proxy=None,
                ssl=ssl.create_default_context() if self.spec.url.startswith("wss:") else None,
                create_connection=StreamConnection.handing_to(self._handle),  # sip/stream_socket.py
            )
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            log.warning("call %d: %s (%s)", self.key, WORKER_UNREACHABLE, type(exc).__name__)
            return None
        if self._closing:  # the call ended while we were connecting
            with contextlib.suppress(WebSocketException, OSError):
                await ws.close()
            return None
        return ws

    async def _stream(self, ws: ClientConnection) -> str | None:
        """Talk to the worker until the call ends (None) or the worker is lost (why).

        A socket that drops (any end but a normal closure by the worker) is re-opened while the spec's
        ``reconnects`` (connection attempts over the whole call) last, ``reconnect_backoff`` apart and
        doubling, all within RECONNECT_SECONDS of the drop: a worker that does not come back in time
        still costs the callee under 2 s of dead air. The new socket gets ``connected`` and ``start``
        again, same callSid and streamSid, with customParameters ``reconnect`` = how many re-openings.
        """
        attempts, reopened = self.spec.reconnects, 0
        while True:
            reason = await self._talk(ws, reopened)
            if reason is None or attempts <= 0 or ws.close_code == NORMAL_CLOSURE:
                return reason
            self._started = False  # frames heard meanwhile are dropped; their chunks still count
            self.playout.clear()  # the new socket's worker starts over: no stale audio, no stale marks
            deadline = time.monotonic() + RECONNECT_SECONDS
            backoff, again = self.spec.reconnect_backoff, None
            while again is None and attempts > 0 and not self._closing:
                if time.monotonic() + backoff >= deadline:
                    break
                await asyncio.sleep(backoff)
                attempts -= 1
                backoff *= 2
                again = await self._open(deadline - time.monotonic())
            if again is None:
                return None if self._closing else reason
            ws, reopened = again, reopened + 1
            log.info("call %d: voice worker socket re-opened (%d)", self.key, reopened)

    async def _talk(self, ws: ClientConnection, reopened: int) -> str | None:
        self._queue = asyncio.Queue()  # this socket's own: what was queued for a dropped one is gone
        self._sequence = 0
        self._queue.put_nowait(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        parameters = self.spec.parameters | ({"reconnect": str(reopened)} if reopened else {})
        start = {
            "accountSid": self.spec.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.spec.call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": MEDIA_FORMAT,
        }
        self._start_text = self._send("start", {"start": start})
        self._started = True
        for digit in self._held:
            self._digit(digit)
        self._held.clear()
        writer = asyncio.create_task(self._write(ws))
        try:
            await ws.wait_closed()  # the worker's messages are handled as they arrive (_connection)
        finally:
            if self._closing:
                with contextlib.suppress(TimeoutError, WebSocketException, OSError):
                    await asyncio.wait_for(writer, CLOSE_SECONDS)  # ``stop`` goes out before we close
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                await writer
        if self._proving is not None:
            self._proving.cancel()
            self._proving = None
        if self._closing:
            return None
        if self._silent:
            log.warning("call %d: %s", self.key, WORKER_SILENT)
            return WORKER_SILENT
        if ws.close_code == NORMAL_CLOSURE:  # the worker ended the call on purpose: its hang-up
            log.info("call %d: %s", self.key, WORKER_CLOSED)
            return WORKER_CLOSED
        log.warning("call %d: %s (close code %s)", self.key, WORKER_DISCONNECTED, ws.close_code)
        return WORKER_DISCONNECTED

    async def _write(self, ws: ClientConnection) -> None:
        """Send what is queued, in order: what queued up meanwhile (a tick's frame and marks) in one
        socket write, the normal way when the socket is not keeping up; ``None`` closes."""
        queue, done = self._queue, False
        while not done:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            if None in batch:
                batch, done = batch[: batch.index(None)], True
            texts: list[str] = batch  # type: ignore[assignment]  # None is cut off above
            if texts and not send_now(ws, texts):
                for text in texts:
                    await ws.send(text)
            if self._start_text in texts and self.connected_at is None and self._proving is None:
                # ``start`` is out; a worker that crashed right after the handshake has not taken the
                # call: it is proven there by its first message or by the pong of a ping sent now.
                self._proving = asyncio.create_task(self._prove(ws))
        await ws.close()

    async def _prove(self, ws: ClientConnection) -> None:
        """Ping once after ``start``: a pong (or any message) proves the worker there. None within
        PROOF_SECONDS: the worker is gone (a process hung or killed after the handshake), and the
        socket is dropped so the call is not left in dead air until the keep-alive notices."""
        try:
            pong = await ws.ping()
            await asyncio.wait_for(pong, PROOF_SECONDS)
        except TimeoutError:
            if self.connected_at is None:
                self._silent = True
                ws.transport.abort()
        except (WebSocketException, OSError):
            pass  # the socket is gone already: _talk reports it
        else:
            self._proven()
        self._proving = None

    def _proven(self) -> None:
        """The worker has the call: told once, for abandonment (``worker_connected_at``)."""
        if self.connected_at is None and not self._closing:
            self.connected_at = time.time()
            self.hub.on_request(StreamRequest(self.key, "connected"))

    def _send(self, event: str, body: dict[str, Any]) -> str:
        """Queue a message for the current socket; returns its text."""
        self._sequence += 1
        message = {
            "event": event,
            "sequenceNumber": str(self._sequence),
            "streamSid": self.stream_sid,
            **body,
        }
        text = json.dumps(message, separators=(",", ":"))
        self._queue.put_nowait(text)
        return text

    def _audio(self, pcm: bytes) -> None:
        if self._closing or not (self._started or self._chunk):
            return  # still connecting, or over: Twilio too sends media only between start and stop
        self._chunk += 1  # also while a dropped socket is re-opened: timestamps follow the call's clock
        if not self._started:
            return
        # 50 a second per call: formatted directly (what ``_send`` would make; base64 and the ids need no
        # JSON escaping), about a third of json.dumps' cost
        self._sequence += 1
        payload = base64.b64encode(ulaw_encode(pcm)).decode()
        self._queue.put_nowait(
            f'{{"event":"media","sequenceNumber":"{self._sequence}","streamSid":"{self.stream_sid}",'
            f'"media":{{"track":"inbound","chunk":"{self._chunk}","timestamp":"{(self._chunk - 1) * 20}",'
            f'"payload":"{payload}"}}}}'
        )

    def _digit(self, digit: str) -> None:
        if self._closing:
            return
        if not self._started:  # connecting or re-opening: a keypress is not lost for that
            self._held.append(digit)
            return
        self._send("dtmf", {"dtmf": {"track": "inbound_track", "digit": digit}})

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
        self._proven()
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
        elif event == "opt_out":  # extension: the callee asked never to be called again
            self.hub.on_request(StreamRequest(self.key, "opt_out"))

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
        self._batch_lock = threading.Lock()  # never held around a pjsua2 call
        self._batch: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, function: Callable[..., object], *args: Any) -> None:
        """Run ``function(*args)`` on the hub loop, from any thread, in the order of calls; dropped once
        the hub stopped.

        Calls are batched for the clock thread's per-frame work (``feed``, ``marks_played``): what every
        call's port hands over in one 20 ms tick wakes the loop once (one self-pipe write and one loop
        turn per tick, not one per call and direction). Everything goes through the same batch, so the
        order between threads' calls is kept (a ``stop`` never overtakes the frame before it)."""
        with self._batch_lock:
            self._batch.append((function, args))
            wake = len(self._batch) == 1
        if wake:
            try:
                self.loop.call_soon_threadsafe(self._run_batch)
            except RuntimeError:  # loop closed: nothing will run these
                with self._batch_lock:
                    self._batch.clear()

    def _run_batch(self) -> None:
        with self._batch_lock:
            batch, self._batch = self._batch, []
        for function, args in batch:
            try:
                function(*args)
            except Exception:  # one call's failure must not drop the other calls' frames
                log.exception("a stream callback failed")

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
