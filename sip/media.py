"""The audio attached to one call on the SIP thread: its voice-worker stream port, WAV players and recorders.

``StreamPort`` is an AudioMediaPort at 8 kHz, 16-bit, 20 ms: pjsua's clock thread calls it every 20 ms
in each direction, so its callbacks only move bytes (``StreamSession.feed`` and ``Playout``), and move
them through the frame's memory (``FrameBytes``), never through SWIG's per-element sequence. Teardown
follows docs/pjsua2.md: at DISCONNECTED the port goes quiet and is handed to the call table, which
drops the last reference on the SIP thread a few clock ticks later (never while a tick may be in it).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from sip.playout import FRAME_BYTES, Playout
from sip.protocol import StreamJoined
from sip.recorder import CallRecording, StereoWav
from sip.stream import StreamHub, StreamSession

log = logging.getLogger(__name__)

SILENCE = bytes(FRAME_BYTES)
DYING_SECONDS = 0.2  # > several 20 ms clock ticks: queued conference operations are done by then


class _Vector(ctypes.Structure):
    """libstdc++'s ``std::vector`` header: what a SWIG ``ByteVector`` object points at."""

    _fields_ = [("begin", ctypes.c_void_p), ("end", ctypes.c_void_p), ("capacity", ctypes.c_void_p)]


class FrameBytes:
    """Reads and writes a ``MediaFrame.buf`` (a SWIG ``ByteVector``) through its data pointer.

    ``bytes(frame.buf)`` makes SWIG copy the vector element by element through Python (300-500 us
    for a 320-byte frame, most of a streamed call's CPU); the same bytes read through the vector's
    pointer with ctypes take ~5 us, and a write into a reused vector ~5 us instead of ~20 us for
    ``ByteVector(pcm)``. The pointer layout (begin, end, end of storage) is that of libstdc++, which
    the Linux wheel and a source build both use; ``fast`` is False if a self-check at construction
    finds anything else, and then the slow, always-correct SWIG calls are used.
    """

    MAX = 1 << 16  # a frame bigger than this is not a 20 ms audio frame: never trust the pointers then

    def __init__(self) -> None:
        probe = bytes(range(256)) * 2
        vector = pj.ByteVector(probe)
        try:
            self.fast = self._read(vector) == probe
        except (AttributeError, TypeError, ValueError, OSError):
            self.fast = False
        if not self.fast:
            log.warning("pjsua2 ByteVector layout not recognised: media frames copied the slow way")

    @staticmethod
    def _span(vector: pj.ByteVector) -> tuple[int, int]:
        header = _Vector.from_address(int(vector.this))
        begin, end = header.begin or 0, header.end or 0
        size = end - begin
        if not begin or not 0 <= size <= FrameBytes.MAX:
            raise ValueError("not a vector")
        return begin, size

    def _read(self, vector: pj.ByteVector) -> bytes:
        begin, size = self._span(vector)
        return ctypes.string_at(begin, size)

    def read(self, frame: pj.MediaFrame) -> bytes:
        """The frame's bytes (one copy, in C)."""
        if self.fast:
            return self._read(frame.buf)
        return bytes(frame.buf)

    def vector(self, size: int) -> pj.ByteVector:
        """A vector to reuse with ``fill``: one per port, used only on the clock thread."""
        return pj.ByteVector(bytes(size))

    def fill(self, vector: pj.ByteVector, data: bytes) -> pj.ByteVector:
        """``vector`` holding ``data`` (same length as when made), or a new vector if that is not possible."""
        if self.fast:
            begin, size = self._span(vector)
            if size == len(data):
                ctypes.memmove(begin, data, size)
                return vector
        return pj.ByteVector(data)


def _format() -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
    return fmt


class StreamPort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 has no stubs
    """Bridges a call's audio to its StreamSession; both callbacks run on pjsua's clock thread.

    A port serves one call at a time and is then reused (``PortPool``): never destroyed while pjsua
    runs. ``live`` is also a class attribute, so a tick that finds the instance half torn down (at
    process exit) still reads "not live" and touches nothing else.
    """

    live = False

    def __init__(self, frames: FrameBytes) -> None:
        super().__init__()
        self.session: StreamSession | None = None
        self.playout = Playout()
        self.recording: StereoWav | None = None  # set: the call is recorded (sip/recorder.py)
        self._frames = frames
        self._silence = pj.ByteVector(SILENCE)
        self._out = frames.vector(FRAME_BYTES)  # refilled every tick; pjsua copies it out of the frame

    def attach(self, session: StreamSession, recording: StereoWav | None = None) -> None:
        """Serve ``session`` from the next tick on (``live`` last: a tick in between sees "not live")."""
        self.session, self.playout, self.recording = session, session.playout, recording
        self.live = True

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        session = self.session
        if not self.live or session is None:
            return
        pcm = (
            self._frames.read(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size else SILENCE
        )
        session.feed(pcm)  # silence keeps the stream's timestamps continuous
        recording = self.recording  # read once: give_back may clear it between two reads
        if recording is not None:
            recording.heard(pcm)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.size = FRAME_BYTES
        session = self.session
        if not self.live or session is None:
            frame.buf = pj.ByteVector(SILENCE)
            return
        pcm, marks = self.playout.next_frame()
        if marks:
            session.marks_played(marks)
        recording = self.recording
        if recording is not None:
            recording.said(SILENCE if pcm is None else pcm)
        # the frame's setter copies the vector in C++: ``_out`` is free again for the next tick
        frame.buf = self._silence if pcm is None else self._frames.fill(self._out, pcm)


class PortPool:
    """Stream ports, reused from call to call and never destroyed while pjsua runs; SIP thread only.

    Destroying an AudioMediaPort races pjsua's clock thread (docs/pjsua2.md): pjmedia's conference
    bridge removes a port asynchronously, so a tick already under way can still call into the freed
    port (a segfault, seen in CI at the end of a 6-call campaign). A port that served a call waits
    ``DYING_SECONDS`` (its disconnections are done by then) and then serves the next one; the pool
    grows to the peak number of streamed calls. At shutdown ``disown`` leaves the ports to the
    process's exit, after ``libDestroy``.
    """

    def __init__(self) -> None:
        self.ports: list[StreamPort] = []  # every port made, so none is freed by accident
        self._free: deque[tuple[float, StreamPort]] = deque()
        self._frames = FrameBytes()

    def take(self, session: StreamSession, recording: StereoWav | None = None) -> StreamPort:
        if self._free and self._free[0][0] <= time.monotonic():
            port = self._free.popleft()[1]
        else:
            port = StreamPort(self._frames)
            port.createPort(f"stream{len(self.ports)}", _format())
            self.ports.append(port)
        port.attach(session, recording)
        return port

    def give_back(self, port: StreamPort) -> None:
        port.live = False
        port.recording = None
        self._free.append((time.monotonic() + DYING_SECONDS, port))

    def disown(self) -> None:
        """Before libDestroy: Python must never run a port's C++ destructor (it calls into pjsua)."""
        for port in self.ports:
            port.thisown = False


def active_audio(call: pj.Call) -> pj.AudioMedia | None:
    """The call's active audio stream in the conference bridge, if it has one now."""
    info = call.getInfo()
    for index, media in enumerate(info.media):
        if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            return call.getAudioMedia(index)
    return None


class CallMedia:
    """A call's audio attachments; SIP thread only. ``stream`` set: bridged to a voice worker once
    the call is answered and its audio is active, whichever comes last."""

    def __init__(self, key: int, ports: PortPool) -> None:
        self.key = key
        self.ports = ports
        self.stream: Any = None  # a StreamSpec
        self.answered = False
        self.audio: pj.AudioMedia | None = None
        self.session: StreamSession | None = None
        self.port: StreamPort | None = None
        self.files: list[Any] = []  # players and recorders
        self.handed_over = False  # the far end was bridged to a human: the stream is over
        self.on_hand_over: Callable[[], None] | None = None  # a SIP-URI worker's leg lets go (sip_worker.py)
        self.recording: CallRecording | None = None  # set: the call is recorded (sip/recorder.py)
        self.held = False  # the stream waits for the answering-machine verdict (sip/amd_media.py)
        self._joined_told = False

    def media_changed(self, call: pj.Call, hub: StreamHub | None) -> None:
        audio = active_audio(call)
        if audio is None:
            return
        self.audio = audio
        if self.port is not None and not self.handed_over:  # a re-INVITE may move the stream
            audio.startTransmit(self.port)
            self.port.startTransmit(audio)
        self._open(hub)

    def confirmed(self, hub: StreamHub | None) -> None:
        self.answered = True
        self._open(hub)

    def open_held(self, hub: StreamHub | None) -> None:
        """The answering-machine verdict is in: the stream held for it may open now."""
        self.held = False
        self._open(hub)

    def _open(self, hub: StreamHub | None) -> None:
        if self.stream is None or hub is None or self.port is not None or self.held:
            return
        if not self.answered or self.audio is None:
            return
        session = hub.open(self.key, self.stream, Playout())
        port = self.ports.take(session, self.recording.streamed() if self.recording else None)
        self.audio.startTransmit(port)
        port.startTransmit(self.audio)
        self.session, self.port = session, port

    def joined(self, answered_at: float | None, ended: bool = False) -> StreamJoined | None:
        """Whether the voice worker took the answered call, once per call (None: nothing to tell).

        Asked when the stream says ``connected``, when it gives up, and at DISCONNECTED (``ended``;
        before the call's ``Ended``, so the gateway still knows the call): the first answer stands.
        """
        if self.stream is None or answered_at is None or self._joined_told:
            return None
        if self.stream.sip:  # a SIP-URI worker's leg: not told yet, so not counted (no false alarm)
            return None
        self._joined_told = True
        connected_at = self.session.connected_at if self.session is not None else None
        return StreamJoined(self.key, answered_at, connected_at, time.time(), ended)

    def hand_over(self) -> None:
        """The far end now talks to a human: stop streaming to the voice worker, which gets ``stop``."""
        self.handed_over = True
        if self.on_hand_over is not None:
            self.on_hand_over()
        if self.port is not None:
            self.port.live = False
            self._unlink(self.port)
        if self.session is not None:
            self.session.close()

    def _unlink(self, port: StreamPort) -> None:
        if self.audio is None:
            return
        try:
            self.audio.stopTransmit(port)
            port.stopTransmit(self.audio)
        except pj.Error:  # already apart (a hand-over did it), or the call's audio left the bridge
            pass

    def transfer_failed(self, code: int | None, reason: str) -> None:
        """Tell the voice worker that the transfer it asked for did not happen (the call is its again)."""
        if self.session is not None and not self.handed_over:
            self.session.transfer_failed(code, reason)

    def play(self, path: str, once: bool) -> bool:
        if self.audio is None:
            return False
        player = pj.AudioMediaPlayer()
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP if once else 0)
        player.startTransmit(self.audio)
        self.files.append(player)
        return True

    def record(self, path: str) -> bool:
        if self.audio is None:
            return False
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        self.audio.startTransmit(recorder)
        self.files.append(recorder)
        return True

    def detach(self) -> list[Any]:
        """The call is over: the port goes quiet and back to the pool, the stream ends; returns what
        to destroy later (players, recorders)."""
        doomed: list[Any] = [*self.files, self.audio]
        if self.recording is not None:  # finished once the rest is destroyed (CallTable.reap)
            doomed.append(self.recording)
        if self.port is not None:
            self.port.live = False
            self._unlink(self.port)
            self.ports.give_back(self.port)
        if self.session is not None:
            self.session.close()
        self.port, self.audio, self.files = None, None, []
        return doomed
