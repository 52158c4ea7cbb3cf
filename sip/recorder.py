"""Call recordings in a SIP worker process: a two-channel WAV per call, callee left, voice worker right.

Only calls whose ``StreamSpec.record`` names a file are recorded; other calls carry one ``None`` check
per frame and nothing else.

- A call streamed to a WebSocket worker: its frames already pass through Python (``StreamPort``), so
  ``StereoWav`` takes the callee's frame (``heard``) and the frame played to the callee (``said``) on
  pjsua's clock thread and writes them interleaved, a second at a time, at 8 kHz 16-bit.
- A call bridged to a SIP-URI worker (no Python per frame): pjsua2's ``AudioMediaRecorder`` is a
  conference-bridge port that mixes whatever is sent to it, so one recorder would give a mono mix.
  ``CallRecording.bridge`` puts two on the bridge instead, one fed by the callee's leg and one by the
  worker's, each a mono WAV at the bridge's clock rate; once the call is over and the recorders are
  destroyed (their WAV header is written then), ``merge`` joins them into the two channels, on a thread
  of its own (never the SIP thread).

Either way the finished file is reported with a ``Recorded`` event carrying the call's ids, since it
comes after the call's ``Ended`` (the gateway has forgotten the key by then).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sip.protocol import Recorded, StreamSpec

log = logging.getLogger(__name__)

RATE = 8000  # the streamed frames' rate (sip/media.py) and the bridge's (sip/endpoint.py BRIDGE_RATE)
WIDTH = 2  # 16-bit samples
FLUSH_FRAMES = 50  # 1 s of 20 ms frames per write
HEADER_SECONDS = 2.0  # a destroyed recorder's WAV header is written within this (many clock ticks)


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono 16-bit PCM runs of equal length as one stereo run (slice copies, done in C)."""
    out = bytearray(len(left) * 2)
    out[0::4], out[1::4] = left[0::2], left[1::2]
    out[2::4], out[3::4] = right[0::2], right[1::2]
    return bytes(out)


def _open_stereo(path: Path, rate: int) -> wave.Wave_write:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = wave.open(str(path), "wb")  # noqa: SIM115 - closed by its owner
    out.setnchannels(2)
    out.setsampwidth(WIDTH)
    out.setframerate(rate)
    return out


class StereoWav:
    """A streamed call's recording: ``heard`` and ``said`` run on pjsua's clock thread once per 20 ms
    tick, ``close`` on the SIP thread; a lock (never held around a pjsua2 call) keeps them apart."""

    def __init__(self, path: Path, rate: int = RATE) -> None:
        self.path = path
        self._out: wave.Wave_write | None = _open_stereo(path, rate)
        self._left: list[bytes] = []
        self._right: list[bytes] = []
        self._lock = threading.Lock()
        self.frames = 0  # samples per channel written

    def heard(self, pcm: bytes) -> None:
        """A frame from the callee (left)."""
        with self._lock:
            self._left.append(pcm)
            if len(self._left) >= FLUSH_FRAMES and len(self._right) >= FLUSH_FRAMES:
                self._write(FLUSH_FRAMES)

    def said(self, pcm: bytes) -> None:
        """A frame played to the callee: the voice worker's audio, or silence (right)."""
        with self._lock:
            self._right.append(pcm)

    def _write(self, count: int) -> None:
        if self._out is None:
            return
        left, right = b"".join(self._left[:count]), b"".join(self._right[:count])
        del self._left[:count], self._right[:count]
        size = max(len(left), len(right))
        left, right = left.ljust(size, b"\0"), right.ljust(size, b"\0")
        try:
            self._out.writeframesraw(interleave(left, right))
        except OSError as exc:  # a full disk loses this recording, never the call
            log.warning("recording %s: write failed (%s): stopped", self.path.name, exc)
            self._drop()
            return
        self.frames += size // WIDTH

    def close(self) -> bool:
        """Write what is left (the shorter channel padded with silence) and the header; False if lost."""
        with self._lock:
            if self._out is None:
                return False
            self._write(max(len(self._left), len(self._right)))
            if self._out is None:
                return False
            out, self._out = self._out, None
        try:
            out.close()
        except OSError:
            return False
        return True

    def _drop(self) -> None:
        out, self._out = self._out, None
        self._left.clear()
        self._right.clear()
        if out is not None:
            with contextlib.suppress(OSError, wave.Error):
                out.close()


def merge(left: Path, right: Path, into: Path) -> float:
    """Two mono 16-bit WAVs of one rate as one stereo WAV (the shorter padded with silence); seconds."""
    with wave.open(str(left), "rb") as a, wave.open(str(right), "rb") as b:
        if a.getframerate() != b.getframerate() or {a.getsampwidth(), b.getsampwidth()} != {WIDTH}:
            raise ValueError("the two parts differ in format")
        rate = a.getframerate()
        one, two = a.readframes(a.getnframes()), b.readframes(b.getnframes())
    size = max(len(one), len(two))
    out = _open_stereo(into, rate)
    try:
        out.writeframes(interleave(one.ljust(size, b"\0"), two.ljust(size, b"\0")))
    finally:
        out.close()
    return size / WIDTH / rate


def _wait_for_header(path: Path, within: float = HEADER_SECONDS) -> None:
    """pjsua writes a recorder's final RIFF header (sizes 0 until then) when the conference bridge has let
    go of its port, which in pjproject 2.15 happens on a clock tick after the recorder object is gone:
    wait for it (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as part:
                head = part.read(12)
        except OSError:
            head = b""
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and int.from_bytes(head[4:8], "little"):
            return  # the RIFF size is 0 until the header is final
        time.sleep(0.02)


class CallRecording:
    """One recorded call's files, on the SIP thread: a ``StereoWav`` for a streamed call, or two
    conference-bridge recorders for a bridged one; ``finish`` once the call's media is gone."""

    def __init__(self, spec: StreamSpec, emit: Callable[[Recorded], None]) -> None:
        self.path = Path(spec.record)
        self.call_sid = spec.call_sid
        self.tenant = spec.account_sid
        self.emit = emit
        self.stereo: StereoWav | None = None
        self.recorders: list[Any] = []  # pj.AudioMediaRecorder: callee's leg, worker's leg
        self.started_at: float | None = None
        self._finished = False

    def streamed(self) -> StereoWav | None:
        """The writer a streamed call's port feeds (made on first use); None if it cannot be opened."""
        if self.stereo is None and not self._finished:
            try:
                self.stereo = StereoWav(self.path)
            except OSError as exc:
                log.warning("call %s: recording not started: %s", self.call_sid, exc)
                self._finished = True
                return None
            self.started_at = time.time()
        return self.stereo

    def bridge(self, callee: Any, worker: Any, recorder: Callable[[str], Any]) -> None:
        """Record a bridged call: ``callee`` and ``worker`` are the legs' AudioMedia, ``recorder(path)``
        makes an AudioMediaRecorder. Called again after a re-INVITE: the new media feed the same files."""
        if self._finished:
            return
        if not self.recorders:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.recorders = [recorder(str(self._part("callee"))), recorder(str(self._part("worker")))]
            self.started_at = time.time()
        callee.startTransmit(self.recorders[0])
        worker.startTransmit(self.recorders[1])

    def _part(self, name: str) -> Path:
        return self.path.with_suffix(f".{name}.wav")

    def finish(self) -> None:
        """The call's media are gone (SIP thread, a few clock ticks after DISCONNECTED): close the file,
        or drop the recorders (which writes their WAV headers) and merge them on a thread of its own."""
        if self._finished:
            return
        self._finished = True
        if self.stereo is not None:
            ok = self.stereo.close()
            seconds = self.stereo.frames / RATE
            self._report(seconds if ok else None, "" if ok else "the recording could not be written")
        elif self.recorders:
            self.recorders.clear()  # the last references: pjsua closes the files and writes their headers
            threading.Thread(target=self._merge, name="recording-merge", daemon=True).start()

    def _merge(self) -> None:
        callee, worker = self._part("callee"), self._part("worker")
        _wait_for_header(callee)
        _wait_for_header(worker)
        try:
            seconds = merge(callee, worker, self.path)
        except (OSError, EOFError, ValueError, wave.Error) as exc:
            log.warning("call %s: recording parts not merged: %s", self.call_sid, exc)
            self._report(None, f"the recording could not be merged: {exc}")
            return
        for part in (callee, worker):
            with contextlib.suppress(OSError):
                os.unlink(part)
        self._report(seconds, "")

    def _report(self, seconds: float | None, error: str) -> None:
        path = str(self.path) if seconds is not None else ""
        self.emit(Recorded(self.call_sid, self.tenant, path, seconds or 0.0, self.started_at or 0.0, error))
