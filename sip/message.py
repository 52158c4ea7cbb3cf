"""Pure readers of raw SIP message text: header values, URI user parts, the Q.850 cause of a Reason."""

from __future__ import annotations

import re
from urllib.parse import unquote

# RFC 3261 compact header forms that can carry what we read.
_COMPACT = {"f": "from", "t": "to"}
_URI_USER = re.compile(r"sips?:([^@;>?\s]+)@|tel:([^;>?\s]+)", re.IGNORECASE)


def _headers(message: str) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs of the message's header section, continuation lines unfolded."""
    head = message.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    pairs: list[tuple[str, str]] = []
    for line in head.split("\n")[1:]:  # the first line is the request or status line
        if line[:1] in (" ", "\t") and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            pairs.append((_COMPACT.get(name, name), value.strip()))
    return pairs


def header_values(message: str, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive, compact forms too), in message order."""
    wanted = name.lower()
    return [value for key, value in _headers(message) if key == wanted]


def _split_unquoted(value: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes (Reason texts may contain commas and semicolons)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def q850_cause(message: str) -> int | None:
    """The Q.850 cause of the message's Reason header(s) (RFC 3326), or None when it has none."""
    for header in header_values(message, "reason"):
        for reason in _split_unquoted(header, ","):
            protocol, *params = _split_unquoted(reason, ";")
            if protocol.upper() != "Q.850":
                continue
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "cause" and value.strip().isdigit():
                    return int(value.strip())
    return None


def uri_user(text: str) -> str | None:
    """The user part of the first sip:, sips: or tel: URI in ``text`` (a header value or a URI)."""
    match = _URI_USER.search(text)
    if match is None:
        return None
    user = match.group(1) or match.group(2)
    return unquote(user.split(":", 1)[0])  # drop the password of a "user:password"


def request_user(message: str) -> str | None:
    """The user part of a request's Request-URI (None for a response or a URI without user)."""
    first_line = message.split("\n", 1)[0].split(" ")
    if len(first_line) < 3 or first_line[0].upper().startswith("SIP/"):
        return None
    return uri_user(first_line[1])


def called_user(message: str) -> str | None:
    """Who an INVITE is for: the Request-URI user, else the To user (some trunks put a route there)."""
    user = request_user(message)
    if user:
        return user
    to = header_values(message, "to")
    return uri_user(to[0]) if to else None


def caller_user(message: str) -> str | None:
    """The From user of a request: the caller's number as the trunk presents it."""
    values = header_values(message, "from")
    return uri_user(values[0]) if values else None
