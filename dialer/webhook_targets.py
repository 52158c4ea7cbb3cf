"""Where webhooks may be sent: the SSRF guard, checked when an endpoint is subscribed and at every POST.

A tenant names the URL, the dialer's host sends to it: without a guard a tenant could make the dialer
POST into the operator's own network (``http://127.0.0.1:6379``, ``http://10.0.0.5/admin``) or read a
cloud metadata service (``http://169.254.169.254/``). So a URL is refused when its host is, or resolves
to, a loopback, private, link-local, shared (CGNAT), multicast, reserved or unspecified address, unless
the operator allows private networks (``DIALER_WEBHOOK_ALLOW_PRIVATE=true``: receivers on the LAN).

The check runs again before each delivery (DNS may have changed since the subscription) and the POST
then goes to the very address that was checked (``Target``), so a name that resolves to a public
address for the check and to a private one a moment later (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_SECONDS = 5.0  # a name server that does not answer in this time fails the check


class TargetRefused(ValueError):
    """The URL may not be called; ``code`` is the API's error code, the message names no address."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to (the host name stays for Host and TLS SNI)."""

    url: str
    host: str
    address: Address

    def pinned_url(self) -> str:
        """``url`` with its host replaced by the checked address (brackets for IPv6)."""
        parts = urlsplit(self.url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        hostport = literal if parts.port is None else f"{literal}:{parts.port}"
        return parts._replace(netloc=f"{userinfo}{at}{hostport}").geturl()

    @property
    def host_header(self) -> str:
        """The ``Host`` the receiver expects: the URL's host (and port), not the pinned address."""
        return urlsplit(self.url).netloc.rpartition("@")[2]


def is_private(address: Address) -> bool:
    """Whether ``address`` is anything but a public unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global  # shared 100.64/10, documentation ranges and the like
    )


@dataclass(frozen=True)
class WebhookTargets:
    """The operator's policy for webhook URLs; ``allow_private`` lets them reach private networks."""

    allow_private: bool = False
    resolve_seconds: float = RESOLVE_SECONDS

    async def check(self, url: str) -> Target:
        """The address to POST ``url`` to; TargetRefused when the URL may not be called."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise TargetRefused("VALIDATION_ERROR", "url must be an absolute http:// or https:// URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise TargetRefused("VALIDATION_ERROR", "url has an invalid port") from None
        addresses = await self._resolve(host, port)
        if not self.allow_private:
            for address in addresses:
                if is_private(address):
                    raise TargetRefused(
                        "WEBHOOK_URL_NOT_ALLOWED",
                        "url points at a loopback, private, link-local or reserved address "
                        "(set DIALER_WEBHOOK_ALLOW_PRIVATE=true to allow private networks)",
                    )
        return Target(url, host, addresses[0])

    async def _resolve(self, host: str, port: int) -> list[Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.resolve_seconds
            )
        except (OSError, TimeoutError, UnicodeError):
            raise TargetRefused("WEBHOOK_URL_UNRESOLVABLE", "url's host name does not resolve") from None
        # Every address the name has, not just the first: a client may connect to any of them.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise TargetRefused("WEBHOOK_URL_UNRESOLVABLE", "url's host name does not resolve")
        return addresses
