"""The demo's pjsua2 carrier as one SIP address: a UDP front that spreads new calls over carrier processes.

A PyPI pjsua2 process holds 4 calls, and the demo's carrier holds its 6 callees, the humans that
transfers reach and the legs it places itself for accepted REFERs. So ``python -m sip.carrier_front``
starts several sip/loopback_carrier.py processes and listens on one UDP port (the trunk's): a new
INVITE goes to the process with the fewest calls, tagged with the script the called number picks
(the front counts the calls of each class, so "busy on the first N calls" holds across processes).
Only the INVITE transaction passes here (INVITE, CANCEL, the ACK of a failure, and their responses,
which pjsip sends back to the source port because of ``rport``): each side's Contact is its own address,
so ACK, BYE, REFER and NOTIFY go straight between the gateway and the carrier process.

It prints ``ready PORT`` once every process is up; end of stdin or SIGTERM stops them all.
No pjsua2 here: this process only relays datagrams.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT_HEADER = "X-Carrier-Script"  # how the front tells a carrier process what to do with a call
PROCESSES = 4  # 16 pjsua call slots: 6 callees, their humans and the legs of accepted REFERs
RTP_PORTS = 40  # per carrier process
START_SECONDS = 15.0
_ROOT = str(Path(__file__).resolve().parent.parent)
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)
_INVITE_USER = re.compile(rb"^INVITE sips?:\+?([0-9]+)@")
# The class digit after the prefix -> the script; 5, 6 and 7 depend on how many calls came before.
_BY_CLASS = {"1": "answer", "2": "busy", "3": "ring", "4": "decline", "8": "human"}


@dataclass
class Scripts:
    """What the carrier does per number class (dialer/demo_scenarios/carrier.xml's header)."""

    prefix: str  # the digits before the class digit, without "+"
    busy_first: int  # class 5: busy on this many calls, then answer
    ring_first: int  # class 6: ring out on this many calls, then answer
    refer_first: int  # class 7: accept the REFER of this many calls, refuse the rest
    seen: Counter[str] = field(default_factory=Counter)

    def pick(self, user: str) -> str:
        """The script of a new call to ``user`` (digits)."""
        digit = user[len(self.prefix) : len(self.prefix) + 1] if user.startswith(self.prefix) else ""
        self.seen[digit] += 1
        n = self.seen[digit]
        if digit == "5":
            return "busy" if n <= self.busy_first else "answer"
        if digit == "6":
            return "ring" if n <= self.ring_first else "answer"
        if digit == "7":
            return "refer-accept" if n <= self.refer_first else "refer-refuse"
        return _BY_CLASS.get(digit, "answer")


class Front:
    """The relay: new INVITEs to the least busy process, the rest of a transaction by its Call-ID."""

    def __init__(self, sock: socket.socket, processes: list[tuple[str, int]], scripts: Scripts) -> None:
        self.sock = sock
        self.scripts = scripts
        self.calls: dict[tuple[str, int], set[bytes]] = {address: set() for address in processes}
        self.route: dict[bytes, tuple[tuple[str, int], str]] = {}  # Call-ID -> process, script
        self.origin: dict[bytes, tuple[str, int]] = {}  # Call-ID -> who sent the INVITE
        self.lock = threading.Lock()  # calls is updated by the processes' reader threads

    def reported(self, process: tuple[str, int], line: str) -> None:
        """A carrier process says a call started (it placed it) or ended."""
        what, _, call_id = line.partition(" ")
        with self.lock:
            if what == "start":
                self.calls[process].add(call_id.encode())
            elif what == "end":
                self.calls[process].discard(call_id.encode())

    def relay(self, data: bytes, sender: tuple[str, int]) -> None:
        found = _CALL_ID.search(data)
        if found is None:
            return  # a keep-alive
        call_id = found.group(1)
        if data.startswith(b"SIP/2.0 "):
            back = self.origin.get(call_id)
            if back is not None:
                self.sock.sendto(data, back)
            return
        routed = self.route.get(call_id)
        if routed is None:
            user = _INVITE_USER.match(data)
            if user is None:
                return  # not a new call: nothing of ours
            with self.lock:
                process = min(self.calls, key=lambda p: len(self.calls[p]))
                self.calls[process].add(call_id)
            routed = self.route[call_id] = (process, self.scripts.pick(user.group(1).decode()))
            self.origin[call_id] = sender
        process, script = routed
        if data.startswith(b"INVITE "):  # a retransmission gets the same script
            end = data.index(b"\r\n") + 2
            data = data[:end] + f"{SCRIPT_HEADER}: {script}\r\n".encode() + data[end:]
        self.sock.sendto(data, process)


def _spawn(rtp_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "sip.loopback_carrier", str(rtp_port), str(RTP_PORTS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip


def _address(proc: subprocess.Popen[bytes]) -> tuple[str, int]:
    """The SIP address a started carrier process reports (they start side by side)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_SECONDS)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("ready "):
        raise RuntimeError("a carrier process did not start")
    return "127.0.0.1", int(line.split()[1])


def _read(proc: subprocess.Popen[bytes], process: tuple[str, int], front: Front) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        front.reported(process, line.decode().strip())


def _until_eof(stop: threading.Event) -> None:
    """Whoever started us is gone once our stdin ends: stop then."""
    while os.read(0, 4096):  # unbuffered: a buffered reader's lock would stall interpreter exit
        pass
    stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--busy-first", type=int, default=0)
    parser.add_argument("--ring-first", type=int, default=0)
    parser.add_argument("--refer-first", type=int, default=0)
    parser.add_argument(
        "--rtp-port", type=int, required=True, help=f"{PROCESSES} x {RTP_PORTS} ports from it"
    )
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the demo decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_until_eof, args=(stop,), daemon=True).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = [_spawn(args.rtp_port + i * RTP_PORTS) for i in range(PROCESSES)]
        started = [(proc, _address(proc)) for proc in procs]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            scripts = Scripts(args.prefix.lstrip("+"), args.busy_first, args.ring_first, args.refer_first)
            front = Front(sock, [address for _, address in started], scripts)
            for proc, address in started:
                threading.Thread(target=_read, args=(proc, address, front), daemon=True).start()
            print(f"ready {sock.getsockname()[1]}", flush=True)
            while not stop.is_set():
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable:
                    with contextlib.suppress(OSError):  # an ICMP error from a peer that went away
                        front.relay(*sock.recvfrom(65535))
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()  # each hangs up its calls and exits
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


if __name__ == "__main__":
    main()
