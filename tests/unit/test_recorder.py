"""sip/recorder.py's pure parts: interleaving, the streamed call's stereo writer, merging two mono parts."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from sip.recorder import FLUSH_FRAMES, StereoWav, interleave, merge

FRAME = 320  # 20 ms at 8 kHz, 16-bit


def samples(value: int, count: int) -> bytes:
    return struct.pack(f"<{count}h", *([value] * count))


def read(path: Path) -> tuple[int, int, list[tuple[int, int]]]:
    with wave.open(str(path), "rb") as wav:
        channels, rate, frames = wav.getnchannels(), wav.getframerate(), wav.readframes(wav.getnframes())
    values = struct.unpack(f"<{len(frames) // 2}h", frames)
    return channels, rate, list(zip(values[0::2], values[1::2], strict=True))


def test_interleave_puts_left_then_right_sample_by_sample() -> None:
    left, right = struct.pack("<3h", 1, 2, -3), struct.pack("<3h", 100, -200, 300)
    assert struct.unpack("<6h", interleave(left, right)) == (1, 100, 2, -200, -3, 300)


def test_stereo_wav_pairs_heard_and_said_frames_and_pads_the_shorter(tmp_path: Path) -> None:
    path = tmp_path / "t" / "call.wav"
    wav = StereoWav(path)
    for _ in range(FLUSH_FRAMES + 10):  # one flush of a second, then the rest at close
        wav.said(samples(-7, FRAME // 2))
        wav.heard(samples(5, FRAME // 2))
    wav.heard(samples(5, FRAME // 2))  # the callee's last frame came without its pair
    assert wav.close() and not wav.close(), "closed once"
    channels, rate, pairs = read(path)
    assert (channels, rate) == (2, 8000)
    assert len(pairs) == (FLUSH_FRAMES + 11) * FRAME // 2 == wav.frames
    assert set(pairs[:-160]) == {(5, -7)} and set(pairs[-160:]) == {(5, 0)}


def test_frames_after_close_are_ignored(tmp_path: Path) -> None:
    wav = StereoWav(tmp_path / "c.wav")
    wav.heard(samples(1, 160))
    wav.said(samples(2, 160))
    assert wav.close()
    wav.heard(samples(1, 160) * 60)
    wav.said(samples(2, 160) * 60)
    assert read(tmp_path / "c.wav")[2] == [(1, 2)] * 160


def mono(path: Path, value: int, count: int, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples(value, count))
    return path


def test_merge_makes_two_channels_of_two_mono_parts(tmp_path: Path) -> None:
    left, right = mono(tmp_path / "a.wav", 11, 800), mono(tmp_path / "b.wav", -22, 600)
    seconds = merge(left, right, tmp_path / "out" / "m.wav")
    assert seconds == 0.1
    channels, rate, pairs = read(tmp_path / "out" / "m.wav")
    assert (channels, rate) == (2, 8000)
    assert pairs == [(11, -22)] * 600 + [(11, 0)] * 200


def test_merge_refuses_parts_of_different_rates(tmp_path: Path) -> None:
    left, right = mono(tmp_path / "a.wav", 1, 10), mono(tmp_path / "b.wav", 1, 10, rate=16000)
    with pytest.raises(ValueError, match="format"):
        merge(left, right, tmp_path / "m.wav")
