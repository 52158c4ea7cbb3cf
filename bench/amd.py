"""Run the answering-machine detector (sip/amd.py) over a labelled set made by bench/amd_set.py.

    python bench/amd_set.py --out amd-set && python bench/amd.py amd-set

Prints accuracy (a person is right when ``human``, a machine when a machine verdict), the
false-machine rate (people taken for machines: the costly error, keep <= 2%), ``unknown`` counts,
first-verdict time p50/p95 from the answer, and with ``wait_for_end`` how far the found beep start is
from the real one and how long after its start the beep was known (target: within 300 ms). Each row
that went wrong is listed. Times are audio time, not CPU time; the CPU cost per second of audio is
printed as a ratio to real time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with warnings.catch_warnings():  # see sip/audio.py
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from sip.amd import MACHINE_END_BEEP, MACHINE_VERDICTS, Detector, Verdict, detect


def pcm_of(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 8000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2, path
        return wav.readframes(wav.getnframes())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def beep_found_after(pcm: bytes, beep_ms: int) -> int | None:
    """Milliseconds of audio after the beep's start at which the detector had seen enough tone."""
    detector = Detector(wait_for_end=True)
    for start in range(0, len(pcm), 320):
        detector.feed(pcm[start : start + 320])
        if detector.tone_ms >= detector.p.beep_ms and detector.ms > beep_ms:
            return detector.ms - beep_ms
        if detector.done:
            return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("set", type=Path, help="a folder made by bench/amd_set.py")
    parser.add_argument("--gain-db", type=float, default=0.0, help="scale every recording (quiet lines: -10)")
    args = parser.parse_args()
    rows = json.loads((args.set / "labels.json").read_text())
    right = false_machine = missed_machine = unknown = 0
    humans = machines = 0
    first_ms: list[float] = []
    beep_error: list[float] = []
    beep_latency: list[float] = []
    beeps_missed = 0
    beeps = 0
    false_beeps = 0  # machine_end_beep on a greeting without a beep, or far from the real one
    by_noise: dict[float, list[int]] = {}
    wrong: list[str] = []
    audio_s = cpu_s = 0.0
    for row in rows:
        pcm = pcm_of(args.set / row["file"])
        if args.gain_db:
            pcm = audioop.mul(pcm, 2, 10 ** (args.gain_db / 20))
        audio_s += len(pcm) / 16000
        started = time.process_time()
        verdicts: list[Verdict] = detect(pcm, wait_for_end=True)
        cpu_s += time.process_time() - started
        first = verdicts[0]
        first_ms.append(first.at_ms)
        machine = first.answered_by in MACHINE_VERDICTS
        if row["kind"] == "human":
            humans += 1
            ok = first.answered_by == "human"
            false_machine += machine
        else:
            machines += 1
            ok = machine
            missed_machine += not machine
        unknown += first.answered_by == "unknown"
        right += ok
        by_noise.setdefault(row["noise"], [0, 0])[0] += ok
        by_noise[row["noise"]][1] += 1
        last = verdicts[-1]
        found_beep = last.beep_ms if last.answered_by == MACHINE_END_BEEP else None
        if found_beep is not None and (row["beep_ms"] is None or abs(found_beep - row["beep_ms"]) > 300):
            false_beeps += 1
            wrong.append(f"{row['file']}: a beep found at {last.beep_ms} ms, real one at {row['beep_ms']}")
        if row["kind"] == "machine" and row["beep_ms"] is not None:
            beeps += 1
            if last.answered_by == MACHINE_END_BEEP and last.beep_ms is not None:
                beep_error.append(abs(last.beep_ms - row["beep_ms"]))
                found = beep_found_after(pcm, row["beep_ms"])
                if found is not None:
                    beep_latency.append(found)
            else:
                beeps_missed += 1
                wrong.append(f"{row['file']}: beep at {row['beep_ms']} ms not found ({last})")
        if not ok:
            wrong.append(
                f"{row['file']}: {row['kind']} taken as {first.answered_by} ({first.reason}) {row['text']!r}"
            )
    total = len(rows)
    print(f"recordings: {total} ({humans} people, {machines} machines), {audio_s:.0f} s of audio")
    print(f"accuracy: {right / total:.1%} ({right}/{total})")
    print(
        f"false machine (person taken for a machine): {false_machine / max(humans, 1):.1%} "
        f"({false_machine}/{humans})"
    )
    print(
        f"machines missed: {missed_machine / max(machines, 1):.1%} ({missed_machine}/{machines}), "
        f"unknown verdicts: {unknown}"
    )
    noise = ", ".join(f"{level:g}: {ok}/{n}" for level, (ok, n) in sorted(by_noise.items()))
    print(f"right by noise amplitude: {noise}")
    print(f"false beeps (none there, or > 300 ms from the real one): {false_beeps}")
    print(f"first verdict after answer: p50 {pct(first_ms, 0.5):.0f} ms, p95 {pct(first_ms, 0.95):.0f} ms")
    if beeps:
        print(
            f"beeps found: {beeps - beeps_missed}/{beeps}; start error p50 {pct(beep_error, 0.5):.0f} ms, "
            f"p95 {pct(beep_error, 0.95):.0f} ms, max {max(beep_error, default=float('nan')):.0f} ms"
        )
        within = sum(1 for v in beep_latency if v <= 300)
        print(
            f"beep known after its start: p50 {pct(beep_latency, 0.5):.0f} ms, "
            f"p95 {pct(beep_latency, 0.95):.0f} ms, "
            f"within 300 ms: {within}/{beeps}"
        )
    print(
        f"CPU: {cpu_s / max(audio_s, 1e-9):.4f} s per second of audio "
        f"({audio_s / max(cpu_s, 1e-9):.0f}x real time)"
    )
    for line in wrong:
        print("  " + line)


if __name__ == "__main__":
    main()
