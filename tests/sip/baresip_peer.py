"""baresip (Debian's ``baresip``) as a SIP phone on loopback: its own config folder (``-f``), one
account that needs no registrar, G.711 only, a WAV file (``aufile``) as its microphone.

It answers calls to its account by itself (``;answermode=auto``) or places one at start-up (``-e``).
Killed at teardown if still running; its log (``baresip.log`` in its folder) is what it said.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

from sip.audio import tone
from tests.sip.peers import free_port, until
from tests.system_tools import require

TONE_HZ = 700  # baresip's microphone: a tone the dialer's own greeting (reference worker) never plays
RATE = 8000


def tone_wav(path: Path, seconds: float) -> Path:
    """An 8 kHz mono 16-bit WAV of TONE_HZ: aufile needs the codec's rate and S16LE."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(tone(TONE_HZ, seconds, amplitude=0.4))
    return path


class Baresip:
    """One baresip process with its own config folder under ``tmp``."""

    def __init__(self, tmp: Path, user: str) -> None:
        self.port = free_port()
        self.user = user
        self.folder = tmp / f"baresip-{self.port}"
        self.folder.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        path = self.folder / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, *, seconds_of_audio: float = 10.0, dial: str | None = None) -> Baresip:
        binary = require("baresip", "baresip-core")
        wav = tone_wav(self.folder / "microphone.wav", seconds_of_audio)
        rtp = free_port(10)
        config = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.port}",
            "net_interface 127.0.0.1",  # loopback only, whatever else the machine has
            f"audio_source aufile,{wav}",
            "audio_player aubridge,nowhere",  # no sound card: what it hears goes nowhere
            "audio_alert aubridge,nowhere",
            f"rtp_ports {rtp}-{rtp + 9}",
            "module_path /usr/lib/baresip/modules",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module_app account.so",
            "module_app menu.so",
        ]
        (self.folder / "config").write_text("\n".join(line for line in config if line) + "\n")
        account = f"<sip:{self.user}@127.0.0.1:{self.port}>;regint=0;answermode=auto;audio_codecs=PCMU"
        (self.folder / "accounts").write_text(account + "\n")
        (self.folder / "contacts").write_text("")
        args = [binary, "-f", str(self.folder)]
        if dial is not None:
            args += ["-e", f"/dial {dial}"]
        with (self.folder / "baresip.log").open("wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def ready(self, within: float = 10.0) -> Baresip:
        """Once baresip has bound its port and loaded its account (its log says "baresip is ready"):
        a call sent before that would meet a closed port. Fails with its log if it exited."""
        proc = self.proc
        assert proc is not None
        await until(lambda: proc.poll() is not None or "baresip is ready" in self.log, within)
        assert proc.poll() is None, f"baresip exited ({proc.returncode}):\n{self.log}"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
