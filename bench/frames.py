"""Per-frame cost of the media hot path: reading and writing a pjsua2 frame buffer, mu-law, one media message.

    python bench/frames.py [--frames 2000]

Times, per 20 ms frame of 8 kHz 16-bit PCM (320 bytes), what a SIP worker's clock thread and hub loop
do for each streamed call 50 times a second: ``bytes(frame.buf)`` (SWIG's per-element copy) against
``FrameBytes.read`` (one copy through the vector's pointer), ``ByteVector(pcm)`` against
``FrameBytes.fill``, and mu-law by the pure-Python tables against audioop. No SIP, no network: the
numbers are microseconds on this machine, printed with their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pjsua2 as pj

from sip.audio import (
    tone,
    ulaw_decode,
    ulaw_decode_reference,
    ulaw_encode,
    ulaw_encode_reference,
)
from sip.media import FrameBytes


def per_call_us(function: Callable[[], object], frames: int) -> float:
    """Median of 5 rounds of ``frames`` calls, in microseconds per call."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(frames):
            function()
        rounds.append((time.perf_counter() - start) / frames * 1e6)
    return sorted(rounds)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--frames", type=int, default=2000)
    n = parser.parse_args().frames
    pcm = tone(1000, 0.02)
    ulaw = ulaw_encode(pcm)
    frames = FrameBytes()
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(pcm)
    frame.size = len(pcm)
    out = frames.vector(len(pcm))

    def write_old() -> None:
        frame.buf = pj.ByteVector(pcm)

    def write_new() -> None:
        frame.buf = frames.fill(out, pcm)

    pairs = [
        ("read frame.buf", lambda: bytes(frame.buf), lambda: frames.read(frame)),
        ("write frame.buf", write_old, write_new),
        ("mu-law encode", lambda: ulaw_encode_reference(pcm), lambda: ulaw_encode(pcm)),
        ("mu-law decode", lambda: ulaw_decode_reference(ulaw), lambda: ulaw_decode(ulaw)),
    ]
    print(f"per 20 ms frame (320 bytes PCM), median of 5 x {n}; pointer path in use: {frames.fast}")
    print(f"  {'':18} {'before us':>10} {'after us':>10} {'ratio':>7}")
    total_old = total_new = 0.0
    for name, old, new in pairs:
        before, after = per_call_us(old, n), per_call_us(new, n)
        total_old, total_new = total_old + before, total_new + after
        print(f"  {name:18} {before:10.1f} {after:10.1f} {before / after:6.0f}x")
    print(f"  {'all four':18} {total_old:10.1f} {total_new:10.1f} {total_old / total_new:6.0f}x")
    print(f"  = {total_old * 50 / 1e4:.2f}% -> {total_new * 50 / 1e4:.2f}% of a core per streamed call")


if __name__ == "__main__":
    main()
