"""Benchmark: what recording adds to a streamed call's per-frame work, against that work itself.

Every 20 ms a streamed call's port hands the frame it heard to its stream (mu-law encoding, base64,
the ``media`` JSON: ``StreamSession._audio``) and takes one to play. A recorded call adds
``StereoWav.heard`` and ``.said`` (a lock, a list append, one interleave and one file write a second);
a call not recorded adds one attribute read and ``None`` test per direction. Prints the per-frame cost of
each (median of repeats, microseconds) and the ratios to the streaming work, all measured in this run.

    python bench/recording.py [--frames 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from sip.audio import tone, ulaw_encode
from sip.recorder import StereoWav

FRAME = 320


def frames(count: int) -> list[bytes]:
    pcm = tone(440, 1.0)
    return [
        pcm[(i * FRAME) % len(pcm) : (i * FRAME) % len(pcm) + FRAME].ljust(FRAME, b"\0") for i in range(count)
    ]


def per_frame(work: object, count: int) -> float:
    start = time.perf_counter()
    work()  # type: ignore[operator]
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    heard = frames(args.frames)

    def streaming() -> None:  # what StreamSession._audio does per frame (the reference)
        for pcm in heard:
            payload = base64.b64encode(ulaw_encode(pcm)).decode()
            _ = f'{{"event":"media","media":{{"payload":"{payload}"}}}}'

    class Port:
        recording: StereoWav | None = None

    def unrecorded() -> None:  # the hook in StreamPort's two callbacks when the call is not recorded
        port = Port()
        for pcm in heard:
            recording = port.recording
            if recording is not None:
                recording.heard(pcm)
            recording = port.recording
            if recording is not None:
                recording.said(pcm)

    def recorded() -> None:
        with tempfile.TemporaryDirectory() as folder:
            port = Port()
            port.recording = StereoWav(Path(folder) / "call.wav")
            for pcm in heard:
                recording = port.recording
                if recording is not None:
                    recording.heard(pcm)
                recording = port.recording
                if recording is not None:
                    recording.said(pcm)
            port.recording.close()

    results: dict[str, list[float]] = {"streaming": [], "unrecorded": [], "recorded": []}
    for _ in range(args.repeat):
        for name, work in (("streaming", streaming), ("unrecorded", unrecorded), ("recorded", recorded)):
            results[name].append(per_frame(work, args.frames))
    median = {name: statistics.median(values) for name, values in results.items()}
    print(f"{args.frames} frames x {args.repeat} repeats, median per 20 ms frame:")
    reference = median["streaming"]
    print(f"  streaming work (reference): {reference:.2f} us")
    hook, recorded_cost = median["unrecorded"], median["recorded"]
    print(f"  not recorded, the hook:     {hook:.3f} us ({hook / reference:.3f}x)")
    print(f"  recorded, heard + said:     {recorded_cost:.2f} us ({recorded_cost / reference:.2f}x)")


if __name__ == "__main__":
    main()
