"""Generate a labelled answering-machine-detection set: people answering and voicemail greetings.

espeak-ng speaks the words (several voices, speeds and pitches), sox makes them sound like a phone
line (300-3400 Hz band, 8 kHz, a G.711 mu-law round trip) and mixes in silences, beeps and noise.
Each row of ``labels.json`` names a WAV (8 kHz, mono, 16-bit) and what is in it: ``kind`` human or
machine, ``beep_ms`` where a beep starts (None: no beep), ``greeting_end_ms`` where speech ends.

    python bench/amd_set.py --out amd-set [--count 200] [--seed 7]

Needs ``espeak-ng`` and ``sox`` on PATH (Debian: ``apt-get install espeak-ng sox``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

RATE = 8000

HUMAN_LINES = [
    "Hello?",
    "Hello.",
    "Yes?",
    "Yeah?",
    "Hi.",
    "Hello, who is this?",
    "Yes, who is this?",
    "Hello, this is Sam.",
    "Good morning.",
    "Speaking.",
    "Hello, yes?",
    "Hi, who's calling?",
    "Hello, Smith residence.",
    "Yep?",
]
GREETINGS = [
    "Hi, you have reached the voicemail of John Smith. I can't take your call right now. "
    "Please leave a message after the tone.",
    "The person you are calling is not available. Please leave your message after the tone. "
    "When you have finished recording, you may hang up.",
    "Hello, this is Sarah. Sorry I missed your call. Leave your name and number and I will call you back.",
    "You have reached the office of Doctor Jones. Our office hours are nine to five, Monday to Friday. "
    "Please leave a message.",
    "Hey, it's Mike. Leave a message.",
    "Thank you for calling. Nobody is available to take your call. Please leave a message after the beep.",
    "Hi there, you've reached Anna and Tom. We're not home right now, so leave us a message.",
    "Welcome to the voice messaging system. The subscriber you have dialled is not available.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+f2", "en-us+m3", "en-gb-scotland", "en-029+f4", "en-us-nyc"]


def run(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def speak(text: str, voice: str, speed: int, pitch: int, path: Path) -> None:
    """``text`` spoken into ``path`` at 8 kHz through a phone line's band (no silence padding)."""
    raw = path.with_suffix(".raw.wav")
    run("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text)
    # Trim espeak's own leading/trailing silence, so the labels' times are the speech's.
    run(
        "sox",
        str(raw),
        "-r",
        str(RATE),
        "-c",
        "1",
        "-b",
        "16",
        str(path),
        "sinc",
        "300-3400",
        "silence",
        "1",
        "0.02",
        "0.5%",
        "reverse",
        "silence",
        "1",
        "0.02",
        "0.5%",
        "reverse",
    )
    raw.unlink()


def silence(seconds: float, path: Path) -> None:
    run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "trim", "0", f"{seconds:.3f}")


def beep(hz: int, seconds: float, path: Path) -> None:
    run(
        "sox",
        "-n",
        "-r",
        str(RATE),
        "-c",
        "1",
        "-b",
        "16",
        str(path),
        "synth",
        f"{seconds:.3f}",
        "sine",
        str(hz),
        "vol",
        "0.4",
    )


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def build(parts: list[Path], out: Path, noise: float, work: Path) -> None:
    """Concatenate ``parts``, add noise (amplitude, 0: none) and pass it through mu-law and back."""
    joined = work / "joined.wav"
    run("sox", *map(str, parts), str(joined))
    source = joined
    if noise > 0:
        hiss = work / "noise.wav"
        kind = random.choice(["whitenoise", "pinknoise", "brownnoise"])
        run(
            "sox",
            "-n",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(hiss),
            "synth",
            f"{seconds_of(joined):.3f}",
            kind,
            "vol",
            f"{noise:.4f}",
        )
        mixed = work / "mixed.wav"
        run("sox", "-m", str(joined), str(hiss), str(mixed))
        source = mixed
    ulaw = work / "line.wav"
    run("sox", str(source), "-e", "u-law", str(ulaw))
    run("sox", str(ulaw), "-e", "signed-integer", "-b", "16", str(out))


def make_row(index: int, kind: str, out_dir: Path, work: Path, rng: random.Random) -> dict[str, object]:
    voice = rng.choice(VOICES)
    speed = rng.randint(140, 200)
    pitch = rng.randint(30, 70)
    text = rng.choice(HUMAN_LINES if kind == "human" else GREETINGS)
    speech = work / "speech.wav"
    speak(text, voice, speed, pitch, speech)
    lead = rng.uniform(0.1, 1.2)
    silence(lead, work / "lead.wav")
    parts = [work / "lead.wav", speech]
    speech_end = lead + seconds_of(speech)
    beep_at: float | None = None
    beep_hz: int | None = None
    if kind == "human":
        silence(rng.uniform(3.0, 6.0), work / "after.wav")  # the person waits for an answer
        parts.append(work / "after.wav")
    else:
        gap = rng.uniform(0.2, 0.9)
        silence(gap, work / "gap.wav")
        parts.append(work / "gap.wav")
        if rng.random() < 0.7:
            beep_at = speech_end + gap
            beep_hz = rng.choice([440, 850, 1000, 1200, 1400, 1800, 2000])
            beep(beep_hz, rng.uniform(0.2, 1.0), work / "beep.wav")
            parts.append(work / "beep.wav")
        silence(4.0, work / "tail.wav")
        parts.append(work / "tail.wav")
    noise = rng.choice([0.0, 0.0, 0.005, 0.01, 0.02, 0.04])
    name = f"{index:04d}_{kind}.wav"
    build(parts, out_dir / name, noise, work)
    return {
        "file": name,
        "kind": kind,
        "text": text,
        "voice": voice,
        "noise": noise,
        "speech_start_ms": round(lead * 1000),
        "greeting_end_ms": round(speech_end * 1000),
        "beep_ms": None if beep_at is None else round(beep_at * 1000),
        "beep_hz": beep_hz,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("amd-set"))
    parser.add_argument("--count", type=int, default=200, help="recordings, half people, half machines")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: apt-get install espeak-ng sox)")
    rng = random.Random(args.seed)
    random.seed(args.seed)  # the noise colour in build()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.count):
            kind = "human" if index % 2 == 0 else "machine"
            rows.append(make_row(index, kind, args.out, Path(tmp), rng))
    (args.out / "labels.json").write_text(json.dumps(rows, indent=1))
    print(f"{len(rows)} recordings in {args.out}")


if __name__ == "__main__":
    main()
