"""Mu-law in C against the reference tables; pjsua2 frame buffers read and written through their pointer."""

from __future__ import annotations

from array import array

import pjsua2 as pj

from sip.audio import ulaw_decode, ulaw_decode_reference, ulaw_encode, ulaw_encode_reference
from sip.media import FrameBytes

EVERY_SAMPLE = array("h", range(-32768, 32768)).tobytes()


def test_ulaw_decode_matches_the_reference_for_every_byte() -> None:
    every = bytes(range(256))
    assert ulaw_decode(every) == ulaw_decode_reference(every)


def test_ulaw_encode_is_within_one_step_of_the_reference_for_every_sample() -> None:
    fast, slow = ulaw_encode(EVERY_SAMPLE), ulaw_encode_reference(EVERY_SAMPLE)
    assert len(fast) == len(slow) == 65536
    decoded_fast = array("h", ulaw_decode(fast))
    decoded_slow = array("h", ulaw_decode(slow))
    worst = 0
    for sample, a, b in zip(array("h", EVERY_SAMPLE), decoded_fast, decoded_slow, strict=True):
        assert (a < 0) == (b < 0) or abs(sample) < 8, sample  # same sign, apart from near-zero samples
        worst = max(worst, abs(a - b))
    assert worst <= 1024  # one quantisation step of the largest segment
    assert sum(x != y for x, y in zip(fast, slow, strict=True)) < 65536 // 100  # and rare


def test_ulaw_encode_ignores_a_trailing_odd_byte() -> None:
    assert ulaw_encode(b"\x00\x10\x7f") == ulaw_encode(b"\x00\x10")


def test_frame_bytes_reads_what_swig_reads() -> None:
    frames = FrameBytes()
    assert frames.fast  # libstdc++ on Linux: the pointer path is the one in use
    frame = pj.MediaFrame()
    for data in (bytes(range(256)) + bytes(64), b"\x01", bytes(640)):
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)
        assert frames.read(frame) == bytes(frame.buf) == data


def test_frame_bytes_fill_reuses_the_vector_and_the_frame_gets_a_copy() -> None:
    frames = FrameBytes()
    vector = frames.vector(320)
    frame = pj.MediaFrame()
    first, second = bytes(range(160)) * 2, bytes(reversed(range(160))) * 2
    frame.buf = frames.fill(vector, first)
    assert bytes(frame.buf) == first
    assert frames.fill(vector, second) is vector
    assert bytes(frame.buf) == first  # the frame holds its own copy: the next fill does not touch it
    assert bytes(vector) == second
    assert bytes(frames.fill(vector, b"short")) == b"short"  # another size: a new vector


def test_frame_bytes_slow_path_gives_the_same_bytes() -> None:
    frames = FrameBytes()
    frames.fast = False
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(b"abc")
    assert frames.read(frame) == b"abc"
    assert bytes(frames.fill(frames.vector(3), b"xyz")) == b"xyz"
