"""The pjsua2 carrier's front: the script each call gets, and the relay of an INVITE transaction over UDP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sip.carrier_front import SCRIPT_HEADER, Front, Scripts

PREFIX = "442079460"


def test_scripts_follow_the_number_class_and_count_calls_across_the_carrier() -> None:
    scripts = Scripts(PREFIX, busy_first=2, ring_first=1, refer_first=1)
    assert [scripts.pick(f"{PREFIX}5{i:02d}") for i in range(3)] == ["busy", "busy", "answer"]
    assert [scripts.pick(f"{PREFIX}6{i:02d}") for i in range(2)] == ["ring", "answer"]
    refers = [scripts.pick(f"{PREFIX}7{i:02d}") for i in range(3)]
    assert refers == ["refer-accept", "refer-refuse", "refer-refuse"]
    named = {d: scripts.pick(f"{PREFIX}{d}00") for d in "12348"}
    assert named == {"1": "answer", "2": "busy", "3": "ring", "4": "decline", "8": "human"}
    assert scripts.pick("15550100") == "answer", "a number outside the plan is just answered"


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """The front, a gateway and two carrier processes, as UDP sockets on loopback."""
    made = []
    for _ in range(4):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        made.append(sock)
    yield made
    for sock in made:
        sock.close()


def request(method: str, user: str, call_id: str) -> bytes:
    lines = [f"{method} sip:+{user}@127.0.0.1:5060 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;rport"]
    lines += [f"Call-ID: {call_id}", f"CSeq: 1 {method}", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def test_the_front_relays_an_invite_transaction_to_the_least_busy_process(
    sockets: list[socket.socket],
) -> None:
    front_sock, gateway, first, second = sockets
    processes = [first.getsockname(), second.getsockname()]
    front = Front(front_sock, processes, Scripts(PREFIX, 0, 0, 1))
    front.reported(processes[0], "start someone-else")  # the first process is busier

    def through(sender: socket.socket, data: bytes) -> None:
        sender.sendto(data, front_sock.getsockname())
        front.relay(*front_sock.recvfrom(65535))

    invite = request("INVITE", f"{PREFIX}700", "call-1")
    through(gateway, invite)
    got = second.recv(65535)
    assert got.split(b"\r\n")[1] == f"{SCRIPT_HEADER}: refer-accept".encode()
    through(gateway, invite)  # a retransmission: the same process and script, not a second call
    assert f"{SCRIPT_HEADER}: refer-accept".encode() in second.recv(65535)
    through(second, b"SIP/2.0 180 Ringing\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\n\r\n")
    assert gateway.recv(65535).startswith(b"SIP/2.0 180 Ringing")
    through(gateway, request("CANCEL", f"{PREFIX}700", "call-1"))
    assert second.recv(65535).startswith(b"CANCEL ")
    assert len(front.calls[processes[1]]) == 1
    front.reported(processes[1], "end call-1")
    assert not front.calls[processes[1]]

    through(gateway, request("INVITE", f"{PREFIX}701", "call-2"))  # the next call of class 7
    assert f"{SCRIPT_HEADER}: refer-refuse".encode() in second.recv(65535)
