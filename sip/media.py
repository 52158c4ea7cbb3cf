"""The audio attached to one call on the SIP thread: its voice-worker stream port, WAV players and recorders.

``StreamPort`` is an AudioMediaPort at 8 kHz, 16-bit, 20 ms: pjsua's clock thread calls it every 20 ms
in each direction, so its callbacks only move bytes (``StreamSession.feed`` and ``Playout``). Teardown
follows PJSUA2-NOTES.md: at DISCONNECTED the port goes quiet and is handed to the call table, which
drops the last reference on the SIP thread a few clock ticks later (never while a tick may be in it).
"""

from __future__ import annotations

import logging
from typing import Any

import pjsua2 as pj

from sip.stream import FRAME_BYTES, Playout, StreamHub, StreamSession

log = logging.getLogger(__name__)

SILENCE = bytes(FRAME_BYTES)
DYING_SECONDS = 0.2  # > several 20 ms clock ticks: queued conference operations are done by then


def _format() -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
    return fmt


class StreamPort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 has no stubs
    """Bridges a call's audio to its StreamSession; both callbacks run on pjsua's clock thread."""

    def __init__(self, session: StreamSession) -> None:
        super().__init__()
        self.session = session
        self.playout = session.playout
        self.live = True
        self._silence = pj.ByteVector(SILENCE)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if not self.live:
            return
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self.session.feed(bytes(frame.buf))  # the per-frame hot spot: SWIG copies byte by byte
        else:
            self.session.feed(SILENCE)  # keep the stream's timestamps continuous

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pcm, marks = self.playout.next_frame() if self.live else (None, [])
        if marks:
            self.session.marks_played(marks)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = self._silence if pcm is None else pj.ByteVector(pcm)
        frame.size = FRAME_BYTES


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

    def __init__(self, key: int) -> None:
        self.key = key
        self.stream: Any = None  # a StreamSpec
        self.answered = False
        self.audio: pj.AudioMedia | None = None
        self.session: StreamSession | None = None
        self.port: StreamPort | None = None
        self.files: list[Any] = []  # players and recorders
        self.handed_over = False  # the far end was bridged to a human: the stream is over

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

    def _open(self, hub: StreamHub | None) -> None:
        if self.stream is None or hub is None or self.port is not None:
            return
        if not self.answered or self.audio is None:
            return
        session = hub.open(self.key, self.stream, Playout())
        port = StreamPort(session)
        port.createPort(f"stream{self.key}", _format())
        self.audio.startTransmit(port)
        port.startTransmit(self.audio)
        self.session, self.port = session, port

    def hand_over(self) -> None:
        """The far end now talks to a human: stop streaming to the voice worker, which gets ``stop``."""
        self.handed_over = True
        if self.port is not None:
            self.port.live = False
            if self.audio is not None:
                self.audio.stopTransmit(self.port)
                self.port.stopTransmit(self.audio)
        if self.session is not None:
            self.session.close()

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
        """The call is over: silence the port, end the stream; returns what to destroy later."""
        doomed: list[Any] = [*self.files, self.audio]
        if self.port is not None:
            self.port.live = False
            doomed.append(self.port)
        if self.session is not None:
            self.session.close()
        self.port, self.audio, self.files = None, None, []
        return doomed
