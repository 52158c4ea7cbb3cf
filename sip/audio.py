"""8 kHz telephone audio: G.711 mu-law in C, test tones, a Goertzel level meter.

PCM is 16-bit signed mono in native byte order (little-endian on every platform pjsua2's wheel
exists for), which is what pjmedia's ports hand over. Mu-law runs on every streamed frame in both
directions, so it is C: the standard library's ``audioop`` (deprecated in 3.11-3.12, removed in 3.13,
where the ``audioop-lts`` package provides the same module), about 1 us a frame against 15-20 us for
the pure-Python lookup tables, which stay as the reference the tests compare against.
"""

from __future__ import annotations

import math
import warnings
from array import array
from functools import cache

with (
    warnings.catch_warnings()
):  # 3.11-3.12 warn that audioop leaves the standard library; 3.13 has audioop-lts
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 160: one mu-law frame is 160 bytes, one PCM frame 320
_BIAS = 0x84
_CLIP = 32635


def _encode_sample(sample: int) -> int:
    """G.711 mu-law of one linear sample (the reference algorithm, used to build the table)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sign else sample, _CLIP) + _BIAS
    exponent = 7
    while exponent and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def _decode_byte(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + _BIAS) << ((byte >> 4) & 0x07)
    return _BIAS - magnitude if byte & 0x80 else magnitude - _BIAS


@cache
def _encode_table() -> bytes:
    """Mu-law byte for every 16-bit pattern, indexed by the sample read as unsigned."""
    return bytes(_encode_sample(u - 0x10000 if u & 0x8000 else u) for u in range(0x10000))


@cache
def _decode_table() -> tuple[bytes, ...]:
    """The two PCM bytes of every mu-law byte."""
    return tuple(array("h", [_decode_byte(b)]).tobytes() for b in range(256))


def ulaw_encode(pcm: bytes) -> bytes:
    """Mu-law bytes of 16-bit PCM (one byte per sample); a trailing odd byte is ignored."""
    return audioop.lin2ulaw(pcm[: len(pcm) & ~1], 2)


def ulaw_decode(ulaw: bytes) -> bytes:
    """16-bit PCM of mu-law bytes (two bytes per sample)."""
    return audioop.ulaw2lin(ulaw, 2)


def ulaw_encode_reference(pcm: bytes) -> bytes:
    """``ulaw_encode`` by the G.711 reference algorithm in Python (slow; for tests). audioop rounds
    some negative samples one quantisation step differently, which G.711 decoders cannot tell apart."""
    table = _encode_table()
    view = memoryview(pcm)[: len(pcm) & ~1].cast("H")
    return bytes(map(table.__getitem__, view))


def ulaw_decode_reference(ulaw: bytes) -> bytes:
    """``ulaw_decode`` by lookup table in Python (slow; for tests)."""
    return b"".join(map(_decode_table().__getitem__, ulaw))


def tone(hz: float, seconds: float, amplitude: float = 0.5) -> bytes:
    """A sine tone as 16-bit PCM at 8 kHz, ``amplitude`` a fraction of full scale."""
    peak = amplitude * 32767
    step = 2 * math.pi * hz / RATE
    return array("h", (round(peak * math.sin(step * n)) for n in range(round(seconds * RATE)))).tobytes()


def level(pcm: bytes, hz: float, rate: int = RATE) -> float:
    """Amplitude (fraction of full scale) of the ``hz`` component of PCM: a Goertzel filter.

    A pure tone of amplitude A at ``hz`` reads ~A; other frequencies read near 0 given enough samples
    (frequency resolution is about rate / samples).
    """
    samples = memoryview(pcm)[: len(pcm) & ~1].cast("h")
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / n / 32768
