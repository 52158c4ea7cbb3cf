"""Answering-machine detection on a call's received audio: pure, frame by frame, no I/O.

The rules are Asterisk's ``app_amd`` (an open, well-known description): each 20 ms frame is speech
or silence by its energy after pre-emphasis (rumble and hum count for little) against a threshold
that follows the line's noise floor (``noise_factor`` times the quietest frame of the last
``noise_window_ms``, at least ``silence_threshold``); runs of speech of at least ``min_word_ms`` are
words. Then, from the answer on:

- silence before any speech for ``initial_silence_ms``: ``unknown`` (app_amd says MACHINE; a person
  who is slow to speak must never be taken for a machine, so we do not guess);
- speech going on for ``greeting_ms``, a single word longer than ``max_word_ms``, or more than
  ``max_words`` words: ``machine_start`` (a recorded greeting talks on);
- speech, then ``after_greeting_silence_ms`` of silence: ``human`` (a person says "Hello?" and waits);
- a 2100 Hz answer tone (CED) held ``fax_ms`` before any speech: ``fax``;
- nothing decided within ``analysis_ms``: ``unknown``.

After ``machine_start``, when asked to wait for the greeting's end (``wait_for_end``), it goes on:
a tone of ``beep_low_hz``-``beep_high_hz`` held ``beep_ms`` (found with a zero-crossing estimate of
the frame's pitch and a Goertzel filter at that pitch that must hold most of the frame's energy) is
``machine_end_beep`` once the tone stops; ``end_silence_ms`` of silence with no beep is
``machine_end_silence``; neither by ``timeout_ms`` from the answer is ``machine_end_other``. The
verdict names are Twilio's ``AnsweredBy`` values. docs/amd.md has the parameters and the accuracy
measured by bench/amd.py.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass

with warnings.catch_warnings():  # see sip/audio.py: audioop is C, and audioop-lts on 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 8000
FRAME_MS = 20
FRAME_BYTES = 2 * RATE * FRAME_MS // 1000  # 320: one 20 ms frame of 16-bit PCM

HUMAN = "human"
MACHINE_START = "machine_start"
MACHINE_END_BEEP = "machine_end_beep"
MACHINE_END_SILENCE = "machine_end_silence"
MACHINE_END_OTHER = "machine_end_other"
FAX = "fax"
UNKNOWN = "unknown"
#: Every verdict name; the machine ones make the attempt's outcome ``voicemail``.
VERDICTS = (HUMAN, MACHINE_START, MACHINE_END_BEEP, MACHINE_END_SILENCE, MACHINE_END_OTHER, FAX, UNKNOWN)
MACHINE_VERDICTS = frozenset({MACHINE_START, MACHINE_END_BEEP, MACHINE_END_SILENCE, MACHINE_END_OTHER, FAX})
#: Verdicts after which nothing more comes.
FINAL_VERDICTS = frozenset(set(VERDICTS) - {MACHINE_START})


@dataclass(frozen=True)
class AmdParams:
    """The detector's thresholds, in milliseconds of audio from the answer unless said otherwise."""

    initial_silence_ms: int = 2500
    greeting_ms: int = 1650
    after_greeting_silence_ms: int = 800
    analysis_ms: int = 5000
    min_word_ms: int = 100
    between_words_silence_ms: int = 50
    max_words: int = 4
    max_word_ms: int = 5000
    silence_threshold: int = 64  # RMS of a 16-bit frame under which it is silence, whatever the noise
    noise_factor: float = 2.5  # ... and under this many times the quietest frame of the last seconds
    noise_window_ms: int = 3000
    end_silence_ms: int = 1200
    timeout_ms: int = 30000  # Twilio's MachineDetectionTimeout default
    beep_low_hz: float = 400.0
    beep_high_hz: float = 2050.0
    beep_ms: int = 140
    beep_purity: float = 0.6  # share of the frame's energy at its pitch for a tonal frame
    beep_drift_hz: float = 75.0  # a beep's frames stay within this of its first frame's pitch
    fax_hz: float = 2100.0
    fax_ms: int = 500


@dataclass(frozen=True)
class Verdict:
    """What the detector decided, ``at_ms`` of audio after the answer; ``reason`` says which rule."""

    answered_by: str
    at_ms: int
    reason: str
    beep_ms: int | None = None  # where the beep began (machine_end_beep)

    @property
    def machine(self) -> bool:
        return self.answered_by in MACHINE_VERDICTS


def goertzel_share(samples: memoryview, hz: float, energy: float) -> float:
    """The share of ``energy`` (sum of squares) carried by the ``hz`` component of ``samples``."""
    n = len(samples)
    if not n or energy <= 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * hz / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(k)|^2; a pure tone of amplitude A gives (A n / 2)^2
    return min(1.0, 2 * power / n / energy)


def tone_of(frame: bytes, rms: int, purity: float) -> float | None:
    """The pitch of ``frame`` if it is one pure tone (most energy at one frequency), else None."""
    crossings = audioop.cross(frame, 2)
    if crossings < 4:
        return None
    hz = crossings * 1000 / FRAME_MS / 2 * (FRAME_BYTES / len(frame))
    samples = memoryview(frame).cast("h")
    energy = float(rms) * rms * len(samples)
    best = max((goertzel_share(samples, f, energy), f) for f in (hz - 25, hz, hz + 25))
    return best[1] if best[0] >= purity else None


class Detector:
    """Feed it the callee's audio from the answer, 20 ms at a time; it returns each verdict once.

    ``wait_for_end``: after ``machine_start``, go on until the greeting's end (beep or silence).
    """

    def __init__(self, params: AmdParams | None = None, wait_for_end: bool = False) -> None:
        self.p = params or AmdParams()
        self.wait_for_end = wait_for_end
        self.ms = 0
        self.done = False
        self.verdicts: list[Verdict] = []
        self._first: Verdict | None = None
        self._floor: deque[tuple[int, int]] = deque()  # (frame index, rms), rising: a sliding minimum
        self._frames = 0
        self._last = b"\x00\x00"  # the previous frame's last sample (pre-emphasis)
        self._emphasised = 0
        self._voice_ms = 0  # speech heard in all
        self._run_voice = 0  # ms of the current speech run
        self._run_silence = 0  # ms of the current silence run
        self._in_word = False
        self._words = 0
        self._heard = False
        self._tone_hz: float | None = None
        self._tone_start = 0
        self._tone_ms = 0

    # ---- input -----------------------------------------------------------------------------------

    def feed(self, frame: bytes) -> Verdict | None:
        """One frame of 16-bit PCM at 8 kHz (any length; 20 ms expected); a new verdict or None."""
        if self.done:
            return None
        frame = frame[: len(frame) & ~1]
        if not frame:
            return None
        ms = len(frame) * 1000 // (2 * RATE)
        self.ms += ms
        rms = audioop.rms(frame, 2)
        voiced = self._emphasised_rms(frame) > self._threshold(self._emphasised)
        # A held tone is as loud as the line's floor soon: only the fixed threshold applies to it.
        tone = tone_of(frame, rms, self.p.beep_purity) if rms > self.p.silence_threshold else None
        verdict = self._tones(tone, ms)
        if verdict is None:
            verdict = self._speech(voiced, ms) if self._first is None else self._end(voiced, ms)
        if verdict is None and self.ms >= self._deadline():
            verdict = self._timed_out()
        if verdict is not None:
            self._decide(verdict)
        return verdict

    def _emphasised_rms(self, frame: bytes) -> int:
        """RMS of the frame after pre-emphasis (x[n] - 0.9 x[n-1], in C): rumble and hum, which
        carry most of a noisy line's energy below 300 Hz, count for little, speech for most."""
        previous = self._last + frame[:-2]
        self._last = frame[-2:]
        emphasised = audioop.add(frame, audioop.mul(previous, 2, -0.9), 2)
        self._emphasised = audioop.rms(emphasised, 2)
        return self._emphasised

    def _threshold(self, rms: int) -> float:
        self._frames += 1
        window = self.p.noise_window_ms // FRAME_MS
        while self._floor and self._floor[-1][1] >= rms:
            self._floor.pop()
        self._floor.append((self._frames, rms))
        while self._floor[0][0] <= self._frames - window:
            self._floor.popleft()
        return max(self.p.silence_threshold, self.p.noise_factor * self._floor[0][1])

    @property
    def tone_ms(self) -> int:
        """How long the tone now heard has been held (0: none)."""
        return self._tone_ms

    # ---- rules ---------------------------------------------------------------------------------

    def _tones(self, hz: float | None, ms: int) -> Verdict | None:
        """Track a held pure tone: a fax answer tone before speech, a beep after machine_start."""
        p = self.p
        if hz is not None and self._tone_hz is not None and abs(hz - self._tone_hz) <= p.beep_drift_hz:
            self._tone_ms += ms
        else:
            ended = self._tone_hz is not None and self._tone_ms >= p.beep_ms
            was, started = self._tone_hz, self._tone_start
            self._tone_hz, self._tone_ms, self._tone_start = hz, (ms if hz is not None else 0), self.ms - ms
            if ended and was is not None and self._beep(was):
                return Verdict(MACHINE_END_BEEP, self.ms - ms, "beep", beep_ms=started)
            return None
        fax = self._first is None and not self._heard and abs(self._tone_hz - p.fax_hz) <= 50
        if fax and self._tone_ms >= p.fax_ms:
            return Verdict(FAX, self.ms, "fax answer tone")
        return None

    def _beep(self, hz: float) -> bool:
        """A held tone counts as the greeting's beep only after ``machine_start``: before, a sung
        "Hellooo" could pass for one, and a person must never be taken for a machine."""
        return self._first is not None and self.p.beep_low_hz <= hz <= self.p.beep_high_hz

    def _speech(self, voiced: bool, ms: int) -> Verdict | None:
        """app_amd's word rules, until the first verdict."""
        p = self.p
        if voiced:
            self._run_voice += ms
            self._voice_ms += ms
            self._run_silence = 0
            self._heard = True
            if self._run_voice >= p.min_word_ms and not self._in_word:
                self._in_word = True
                self._words += 1
                if self._words > p.max_words:
                    return Verdict(MACHINE_START, self.ms, f"more than {p.max_words} words")
            if self._run_voice >= p.max_word_ms:
                return Verdict(MACHINE_START, self.ms, "word too long")
            if self._voice_ms >= p.greeting_ms:
                return Verdict(MACHINE_START, self.ms, "long greeting")
            return None
        self._run_silence += ms
        if self._run_silence >= p.between_words_silence_ms:
            self._in_word = False
            self._run_voice = 0
        if not self._heard and self._run_silence >= p.initial_silence_ms:
            return Verdict(UNKNOWN, self.ms, "initial silence")
        if self._words and self._run_silence >= p.after_greeting_silence_ms:
            return Verdict(HUMAN, self.ms, "silence after a short greeting")
        return None

    def _end(self, voiced: bool, ms: int) -> Verdict | None:
        """After machine_start: the greeting ends in silence (a beep is found by ``_tones``)."""
        if voiced:
            self._run_silence = 0
            return None
        self._run_silence += ms
        if self._run_silence >= self.p.end_silence_ms:
            return Verdict(MACHINE_END_SILENCE, self.ms, "silence after the greeting")
        return None

    def _deadline(self) -> int:
        if self._first is None:
            return min(self.p.analysis_ms, self.p.timeout_ms)
        return self.p.timeout_ms

    def _timed_out(self) -> Verdict:
        if self._first is None:
            return Verdict(UNKNOWN, self.ms, "analysis time over")
        return Verdict(MACHINE_END_OTHER, self.ms, "no end of greeting before the timeout")

    def _decide(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        if self._first is None:
            self._first = verdict
            self._run_silence = 0
        self.done = verdict.answered_by in FINAL_VERDICTS or not self.wait_for_end


def detect(pcm: bytes, params: AmdParams | None = None, wait_for_end: bool = False) -> list[Verdict]:
    """Every verdict for a whole recording (bench and tests): fed in 20 ms frames, then silence."""
    detector = Detector(params, wait_for_end)
    for start in range(0, len(pcm), FRAME_BYTES):
        detector.feed(pcm[start : start + FRAME_BYTES])
        if detector.done:
            return detector.verdicts
    silence = bytes(FRAME_BYTES)
    while not detector.done:  # the line after the recording: silence until something is decided
        detector.feed(silence)
    return detector.verdicts
