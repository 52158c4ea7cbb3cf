"""What a SIPp carrier saw, from its ``-trace_msg`` message log: one dialog per INVITE Call-ID, with
the caller ID, the dialer's attempt id, the gateway it came from and when it started and ended.

SIPp stamps every message with its own clock, so overlaps between dialogs are judged on one clock.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

_BLOCK = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(.*?)(?=^-{20,} \d{4}-|\Z)", re.M | re.S)
_DIRECTION = re.compile(r"^\w+ message (received|sent)")


@dataclass
class Dialog:
    """One INVITE dialog at the carrier."""

    call_id: str
    caller: str  # the user part of From: the DID used as caller ID
    attempt_id: str | None  # X-Attempt-Id
    via_port: int  # the sending gateway's SIP port
    start: datetime  # first INVITE received
    answered: bool = False  # ACK received
    end: datetime | None = None  # first BYE or CANCEL (either way), or a final error sent
    ended_by_dialer: bool = False  # the BYE or CANCEL came from the dialer
    invites: int = 1  # INVITE requests received (retransmissions included)
    methods: list[str] = field(default_factory=list)


def _header(message: str, name: str) -> str | None:
    found = re.search(rf"^{name}:\s*(.*)$", message, re.M | re.I)
    return found.group(1).strip() if found else None


def parse(text: str) -> list[Dialog]:
    """Every INVITE dialog in a SIPp message log, in order of arrival."""
    dialogs: dict[str, Dialog] = {}
    for stamp, body in _BLOCK.findall(text):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
        direction = _DIRECTION.match(body)
        message = body.split("\n\n", 1)[1].lstrip("\n") if "\n\n" in body else ""
        call_id = _header(message, "Call-ID")
        if direction is None or call_id is None:
            continue
        received = direction.group(1) == "received"
        first = message.split("\n", 1)[0]
        dialog = dialogs.get(call_id)
        if first.startswith("INVITE ") and received:
            if dialog is not None:
                dialog.invites += 1
                continue
            caller = re.search(r"sip:([^@>;]+)@", _header(message, "From") or "")
            via = re.search(r"SIP/2\.0/\w+ [^:;\s]+:(\d+)", _header(message, "Via") or "")
            dialogs[call_id] = Dialog(
                call_id=call_id,
                caller=caller.group(1) if caller else "",
                attempt_id=_header(message, "X-Attempt-Id"),
                via_port=int(via.group(1)) if via else 0,
                start=at,
            )
            continue
        if dialog is None:
            continue
        dialog.methods.append(("<" if received else ">") + first.split(" ")[0])
        if first.startswith("ACK ") and received:
            dialog.answered = True
        ends = first.startswith(("BYE ", "CANCEL ")) or (
            not received
            and re.match(r"SIP/2\.0 [3-6]\d\d ", first)
            and "INVITE" in (_header(message, "CSeq") or "")
        )
        if ends and dialog.end is None:
            dialog.end = at
            dialog.ended_by_dialer = received
    return list(dialogs.values())


def peak(dialogs: Iterable[Dialog], key: Callable[[Dialog], str] = lambda d: "all") -> dict[str, int]:
    """The most dialogs up at once per ``key``; a dialog is up from its INVITE to its end (a dialog
    with no end counts as up until the last moment). An end and a start at the same instant do not
    overlap: a slot freed by a BYE may be reused by the next INVITE."""
    events: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for dialog in dialogs:
        events[key(dialog)].append((dialog.start, 1))
        if dialog.end is not None:
            events[key(dialog)].append((dialog.end, -1))
    most: dict[str, int] = {}
    for name, changes in events.items():
        up = top = 0
        for _, change in sorted(changes):  # -1 sorts before +1 at the same instant
            up += change
            top = max(top, up)
        most[name] = top
    return most
