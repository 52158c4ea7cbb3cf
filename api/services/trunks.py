"""Trunk checks behind the routes: the address INVITEs go to must resolve when the trunk is saved.

Without the check a trunk whose host is a typo is stored silently, and every call through it ends at
once with a local 502 ("gethostbyname() has returned error") that looked like a congested carrier.
The address checked is the outbound proxy's host when the trunk has one (pjsip sends every request
there, and the trunk host may then be a name only the proxy resolves), else the trunk host.
"""

from __future__ import annotations

import asyncio
import socket

from api.errors import BadRequest

RESOLVE_SECONDS = 3.0  # a name server that does not answer within this fails the check


def dialled_host(host: str, outbound_proxy: str | None) -> str:
    """The host name or address INVITEs are sent to: the proxy URI's host if set, else ``host``."""
    if not outbound_proxy:
        return host
    # sip:user@proxy.example.net:5060;lr  ->  proxy.example.net   ([2001:db8::1]:5060 -> 2001:db8::1)
    rest = outbound_proxy.strip().strip("<>")
    scheme, colon, after = rest.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        rest = after
    rest = rest.rpartition("@")[2].split(";", 1)[0].split("?", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.split(":", 1)[0]


async def resolves(host: str, within: float = RESOLVE_SECONDS) -> bool:
    """Whether ``host`` (DNS name or IP literal) has an address, asked in a thread for ``within`` s."""
    name = host.strip().strip("[]")
    if not name:
        return False
    try:
        infos = await asyncio.wait_for(asyncio.to_thread(socket.getaddrinfo, name, None), within)
    except (OSError, TimeoutError, UnicodeError, ValueError):
        # ValueError: a name no resolver accepts (e.g. too long a label); the thread of a resolver
        # that timed out finishes on its own, its answer dropped.
        return False
    return bool(infos)


async def require_resolvable(host: str, outbound_proxy: str | None, within: float = RESOLVE_SECONDS) -> None:
    """400 TRUNK_HOST_UNRESOLVABLE when the address the trunk's INVITEs go to does not resolve."""
    target = dialled_host(host, outbound_proxy)
    if not await resolves(target, within):
        where = "outbound_proxy's host" if outbound_proxy else "host"
        raise BadRequest(
            "TRUNK_HOST_UNRESOLVABLE",
            f"{where} {target!r} does not resolve to an address: calls through this trunk could not "
            "be placed",
            details=[{"field": "outbound_proxy" if outbound_proxy else "host", "reason": "does not resolve"}],
        )
