"""Answering-machine detection of an answered outbound call, on the SIP worker (sip/amd.py decides).

The callee's audio reaches an ``AmdPort`` from the answer on (pjsua's clock thread: the detector costs
~20 us a frame); each verdict goes to the SIP thread as an ``AmdHeard`` through the worker's command
queue, where ``CallAmd`` acts on it: the voice worker's stream, held back until the verdict (unless
asynchronous), opens with ``answered_by`` in ``start.customParameters``; or the verdict goes to an
already open stream as an ``amd`` event; and a machine's call is hung up, gets the message played
after its greeting, or goes to the worker. Ports are pooled like the stream ports (sip/media.py):
never destroyed while pjsua runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from sip.amd import HUMAN, MACHINE_VERDICTS, AmdParams, Detector, Verdict
from sip.media import DYING_SECONDS, SILENCE, FrameBytes, _format
from sip.protocol import AmdSpec

if TYPE_CHECKING:
    from sip.calls import Call, CallTable

log = logging.getLogger(__name__)

MACHINE_HANGUP = "answering machine"  # the call's end reason (``limit``) when a machine is hung up on
MESSAGE_LEFT = "message left on answering machine"
MESSAGE_TAIL_SECONDS = 0.5  # after the message's last sample, before BYE: the far end's jitter buffer


@dataclass(frozen=True)
class AmdHeard:
    """A verdict of call ``key``'s detector, from the clock thread to the SIP thread."""

    key: int
    verdict: Verdict


class AmdPort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 has no stubs
    """Feeds what the call hears to its detector; ``onFrameReceived`` runs on pjsua's clock thread."""

    live = False

    def __init__(self, frames: FrameBytes) -> None:
        super().__init__()
        self._frames = frames
        self.key = 0
        self.detector: Detector | None = None
        self.post: Callable[[AmdHeard], None] = lambda heard: None

    def attach(self, key: int, detector: Detector, post: Callable[[AmdHeard], None]) -> None:
        self.key, self.detector, self.post = key, detector, post
        self.live = True

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        detector = self.detector
        if not self.live or detector is None or detector.done:
            return
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            pcm = self._frames.read(frame)
        else:
            pcm = SILENCE  # no RTP this tick: the line is silent (the detector's clock goes on)
        verdict = detector.feed(pcm)
        if verdict is not None:
            self.post(AmdHeard(self.key, verdict))

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE  # it only listens


class AmdPorts:
    """Detector ports, reused from call to call (see sip/media.py ``PortPool``); SIP thread only."""

    def __init__(self) -> None:
        self.ports: list[AmdPort] = []
        self._free: deque[tuple[float, AmdPort]] = deque()
        self._frames = FrameBytes()

    def take(self) -> AmdPort:
        if self._free and self._free[0][0] <= time.monotonic():
            return self._free.popleft()[1]
        port = AmdPort(self._frames)
        port.createPort(f"amd{len(self.ports)}", _format())
        self.ports.append(port)
        return port

    def give_back(self, port: AmdPort) -> None:
        port.live = False
        self._free.append((time.monotonic() + DYING_SECONDS, port))

    def disown(self) -> None:
        for port in self.ports:
            port.thisown = False


def wav_seconds(path: str) -> float:
    with wave.open(path) as wav:
        frames: int = wav.getnframes()
        rate: int = wav.getframerate()
    return frames / rate


class CallAmd:
    """One call's detection and what its verdicts do; SIP thread only."""

    def __init__(self, spec: AmdSpec) -> None:
        self.spec = spec
        self.port: AmdPort | None = None
        self.audio: Any = None  # the pj.AudioMedia the port listens to
        self.verdicts: list[Verdict] = []
        self.settled = False  # the final verdict was acted on
        self.decided_at: float | None = None  # epoch of the final verdict

    @property
    def answered_by(self) -> str | None:
        return self.verdicts[-1].answered_by if self.verdicts else None

    @property
    def first_ms(self) -> int | None:
        return self.verdicts[0].at_ms if self.verdicts else None

    def holds_stream(self) -> bool:
        """Whether the voice worker's stream waits for the verdict (sip/media.py ``CallMedia._open``)."""
        return not self.spec.asynchronous and not self.settled

    def abandon_clock(self, answered_at: float | None) -> float | None:
        """Where the 2 s within which a voice worker must take the call start (abandonment).

        A worker held back for the verdict could not talk before it: the clock starts at the end of
        the person's greeting, as Ofcom counts calls with AMD (the verdict less the silence that
        proved the greeting over); at the verdict for ``unknown`` and a machine given to the worker.
        """
        if self.spec.asynchronous or self.decided_at is None or answered_at is None:
            return answered_at
        if self.answered_by == HUMAN:
            return max(answered_at, self.decided_at - AmdParams().after_greeting_silence_ms / 1000)
        return self.decided_at

    def start(self, call: Call, table: CallTable) -> None:
        """The call is answered and its audio active: listen (and follow a re-INVITE that moves it)."""
        audio = call.media.audio
        if self.settled or audio is None or table.post is None:
            return
        if self.port is not None:
            if audio is not self.audio:  # the stream moved: listen to the new one
                audio.startTransmit(self.port)
                self.audio = audio
            return
        params = AmdParams(timeout_ms=round(self.spec.timeout * 1000))
        port = table.amd_ports.take()
        port.attach(call.key, Detector(params, wait_for_end=self.spec.wait_for_end), table.post)
        audio.startTransmit(port)
        self.port, self.audio = port, audio

    def heard(self, call: Call, table: CallTable, verdict: Verdict) -> None:
        """Act on a verdict: tell the worker, and on the last one open its stream or deal with a machine."""
        self.verdicts.append(verdict)
        final = verdict.answered_by != "machine_start" or not self.spec.wait_for_end
        session = call.media.session
        if session is not None and self.spec.asynchronous:
            session.amd(verdict.answered_by, verdict.at_ms)
        if not final:
            return
        self.stop(call, table)
        self.settled = True
        self.decided_at = time.time()
        if verdict.answered_by not in MACHINE_VERDICTS or self.spec.on_machine == "worker":
            self._release_stream(call, table, verdict.answered_by)
            return
        if call.media.session is None:
            call.media.stream = None  # no voice worker for a machine: not an abandoned call either
        if self.spec.on_machine == "leave_message" and self.spec.message_path:
            self._leave_message(call, table)
        else:
            table.hangup(call.key, MACHINE_HANGUP)

    def _release_stream(self, call: Call, table: CallTable, answered_by: str) -> None:
        media = call.media
        if media.stream is not None and media.session is None:
            parameters = {**media.stream.parameters, "answered_by": answered_by}
            media.stream = dataclasses.replace(media.stream, parameters=parameters)
        media.open_held(table.hub)

    def _leave_message(self, call: Call, table: CallTable) -> None:
        if call.media.session is not None:  # an asynchronous worker's stream: it must not talk over it
            call.media.hand_over()
        try:
            played = call.media.play(self.spec.message_path, once=True)
            seconds = wav_seconds(self.spec.message_path)
        except (pj.Error, OSError, EOFError, wave.Error) as exc:
            log.warning("call %d: the answering-machine message could not be played: %s", call.key, exc)
            played, seconds = False, 0.0
        if not played:
            table.hangup(call.key, MACHINE_HANGUP)
            return
        table.after(seconds + MESSAGE_TAIL_SECONDS, call.key, "message left")

    def stop(self, call: Call | None, table: CallTable) -> None:
        """Stop listening (final verdict, or the call ended); the port goes back to the pool."""
        port, self.port = self.port, None
        if port is None:
            return
        port.live = False
        audio, self.audio = self.audio, None
        if audio is not None:
            with contextlib.suppress(pj.Error):  # the call's audio left the bridge already
                audio.stopTransmit(port)
        table.amd_ports.give_back(port)


def ended_fields(amd: CallAmd | None) -> dict[str, Any]:
    """What ``Ended`` says of the call's detection."""
    if amd is None:
        return {}
    return {"answered_by": amd.answered_by, "amd_ms": amd.first_ms}
