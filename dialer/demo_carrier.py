"""The demo's far end: a "carrier" on loopback whose behaviour the called number picks.

SIPp plays it (demo_scenarios/carrier.xml) when installed; else pjsua2 does (sip/carrier_front.py in
front of sip/loopback_carrier.py processes), with the same script per number class.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sip.carrier_front import PROCESSES, RTP_PORTS

# Ofcom keeps 020 7946 0000-0999 for drama: real-looking London numbers that ring nobody. The digit
# after "0" is the far end's script (demo_scenarios/carrier.xml); the human transfers reach uses 8,
# DIDs use 9.
NUMBER_PREFIX = "+442079460"
DID_NUMBERS = tuple(f"{NUMBER_PREFIX}9{i:02d}" for i in range(3))
HUMAN_NUMBER = f"{NUMBER_PREFIX}800"
# The RTP payload type of the telephone-events the gateway's pjsua offers (pjmedia's default,
# PJMEDIA_RTP_PT_TELEPHONE_EVENTS): a digit sent at another type is ignored, and SIPp replays a
# capture as it is, so the carrier answers with this type and its capture of "0" is made with it.
DTMF_PAYLOAD_TYPE = 120


@dataclass(frozen=True)
class Script:
    """What the carrier does when a number of this class is called, attempt after attempt."""

    digit: str
    label: str


ANSWER = Script("1", "answers and talks")
BUSY = Script("2", "always busy")
NO_ANSWER = Script("3", "never answers")
DECLINE = Script("4", "declines")
BUSY_THEN_ANSWER = Script("5", "busy, then answers")
RING_THEN_ANSWER = Script("6", "no answer, then answers")
TRANSFER = Script("7", "answers, then asks for a human")

# The mix a campaign of n prospects cycles through: mostly reachable, with every kind of retry.
MIX = (
    ANSWER,
    BUSY_THEN_ANSWER,
    NO_ANSWER,
    TRANSFER,
    BUSY,
    RING_THEN_ANSWER,
    DECLINE,
    TRANSFER,
    BUSY_THEN_ANSWER,
    RING_THEN_ANSWER,
)
NAMES = (
    "Ada Archer", "Ben Boyd", "Cara Cole", "Dev Dutta", "Eve Ellis", "Finn Ford", "Gita Gill",
    "Hal Hart", "Iris Ivey", "Jon Jones", "Kia Khan", "Leo Lane", "Mia Moss", "Ned Nash", "Ola Owen",
    "Pia Park", "Quin Quay", "Rui Rees", "Sam Shaw", "Tia Todd", "Uma Usher", "Vic Vale", "Wes Wood",
    "Xia Xu", "Yan Young", "Zoe Zane",
)  # fmt: skip


@dataclass(frozen=True)
class DemoProspect:
    """One person the demo campaign calls, and how the carrier will treat them."""

    name: str
    phone: str
    script: Script


def demo_prospects(count: int) -> list[DemoProspect]:
    """``count`` prospects (at most 100 per script) cycling through ``MIX``."""
    seen: dict[str, int] = {}
    people = []
    for i in range(count):
        script = MIX[i % len(MIX)]
        index = seen[script.digit] = seen.get(script.digit, -1) + 1
        name = NAMES[i % len(NAMES)] + (f" {i // len(NAMES) + 1}" if i >= len(NAMES) else "")
        people.append(DemoProspect(name, f"{NUMBER_PREFIX}{script.digit}{index:02d}", script))
    return people


def free_port(span: int = 1) -> int:
    """A port P such that P..P+span-1 are free for both UDP and TCP on loopback right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + span >= 65000:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + span):
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        stack.enter_context(socket.socket(socket.AF_INET, kind)).bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range on loopback")


def dtmf_capture(digit: str, payload_type: int, ms: int = 160) -> bytes:
    """A pcap of one RFC 2833 key press (``ms`` long, then the three end packets), as SIPp's
    ``play_pcap_audio`` replays it: Ethernet/IPv4/UDP/RTP, 20 ms apart; SIPp rewrites the addresses."""
    event = "0123456789*#".index(digit)
    updates = [(i * 160, False) for i in range(ms // 20)] + [((ms // 20) * 160, True)] * 3
    packets = []
    for n, (duration, end) in enumerate(updates):
        seq = min(n, ms // 20)  # the end packet is sent three times, the same packet each time
        marker = 0x80 if seq == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | payload_type, 1000 + seq, 8000, 0x5EED)
        rtp += struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        udp = struct.pack("!HHHH", 10000, 10000, 8 + len(rtp), 0) + rtp  # checksum 0: none
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0, bytes(4), bytes(4))
        ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
        frame = bytes(12) + b"\x08\x00" + ip + udp
        at = seq * 20_000  # the end packets go out together
        packets.append(struct.pack("<IIII", 1, at, len(frame), len(frame)) + frame)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # pcap, Ethernet link type
    return header + b"".join(packets)


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def first_calls(prospects: list[DemoProspect]) -> dict[str, int]:
    """How many calls of classes 5, 6 and 7 go the first way (busy, ring out, REFER accepted)."""
    return {
        "BUSY_FIRST": sum(p.script is BUSY_THEN_ANSWER for p in prospects),
        "RING_FIRST": sum(p.script is RING_THEN_ANSWER for p in prospects),
        "REFER_FIRST": (sum(p.script is TRANSFER for p in prospects) + 1) // 2,
    }


class Carrier(ABC):
    """The far end of every call of the campaign; ``start()`` returns its SIP port."""

    name = "?"

    def __init__(self, workdir: Path, prospects: list[DemoProspect]) -> None:
        self.workdir = workdir
        self.prospects = prospects
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def start(self) -> int:
        """Start the far end (SIPp, or the pjsua2 processes); its SIP port."""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()


class PjsuaCarrier(Carrier):
    """pjsua2 processes behind one UDP front (sip/carrier_front.py): needs nothing but this package."""

    name = "pjsua2"

    def start(self) -> int:
        counts = first_calls(self.prospects)
        args = [sys.executable, "-m", "sip.carrier_front", "--prefix", NUMBER_PREFIX]
        args += ["--busy-first", str(counts["BUSY_FIRST"]), "--ring-first", str(counts["RING_FIRST"])]
        args += [
            "--refer-first",
            str(counts["REFER_FIRST"]),
            "--rtp-port",
            str(free_port(PROCESSES * RTP_PORTS)),
        ]
        root = str(Path(__file__).resolve().parent.parent)  # so the children find `sip`
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], 20.0)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError("the pjsua2 carrier did not start")
        self.port = int(line.split()[1])
        return self.port


class SippCarrier(Carrier):
    """One SIPp UAS playing every callee of the campaign."""

    name = "SIPp"

    def __init__(self, sipp: str, workdir: Path, prospects: list[DemoProspect]) -> None:
        super().__init__(workdir, prospects)
        self.sipp = sipp

    def scenario(self) -> Path:
        """The shipped scenario with its per-run counts filled in (SIPp reads numbers at load time)."""
        text = resources.files("dialer").joinpath("demo_scenarios/carrier.xml").read_text()
        dtmf = self.workdir / "dtmf-0.pcap"
        dtmf.write_bytes(dtmf_capture("0", DTMF_PAYLOAD_TYPE))
        fill = {**first_calls(self.prospects), "DTMF_PT": DTMF_PAYLOAD_TYPE, "DTMF_PCAP": dtmf.resolve()}
        for name, value in fill.items():
            text = text.replace(f"@{name}@", str(value))
        path = self.workdir / "carrier.xml"
        path.write_text(text)
        return path

    def start(self) -> int:
        scenario = self.scenario()
        for _ in range(5):  # a port found free can be taken before SIPp binds it: try another
            self.port = free_port()
            args = [self.sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(self.port)]
            args += ["-mp", str(free_port(4)), "-nostdin"]
            args += ["-trace_err", "-error_file", str(self.workdir / "carrier-errors.log")]
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(0.2)
            if self._proc.poll() is None:
                return self.port
        raise RuntimeError(f"SIPp would not start; see {self.workdir / 'carrier-errors.log'}")
