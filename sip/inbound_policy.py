"""Which inbound INVITEs a SIP worker takes: from a trunk's addresses only, for imported numbers only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from dialer.phone import InvalidPhoneNumber, parse_phone

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def called_number(user: str) -> str:
    """The E.164 form of a called Request-URI user when it reads as one ("+1…" or "1…"), else as is.

    Trunks deliver imported numbers with or without the "+"; the inbound router is keyed by E.164.
    """
    for candidate in (user, f"+{user}"):
        if candidate.startswith("+") and candidate[1:].isdigit():
            try:
                return parse_phone(candidate)
            except InvalidPhoneNumber:
                continue
    return user


@dataclass(frozen=True)
class Refusal:
    """A final response for an INVITE the policy refuses, and the metric reason (never a number)."""

    code: int
    reason: str


SOURCE = Refusal(403, "source")
UNKNOWN_NUMBER = Refusal(404, "unknown_number")


@dataclass(frozen=True)
class InboundPolicy:
    """``networks``: where INVITEs may come from (None: anywhere, for a gateway nobody configured);
    ``numbers``: the E.164 numbers answered (None: every number goes to the gateway's router)."""

    networks: tuple[Network, ...] | None = None
    numbers: frozenset[str] | None = None

    @classmethod
    def build(cls, networks: list[str] | None, numbers: list[str] | None) -> InboundPolicy:
        """From plain data (CIDRs or addresses, E.164 numbers); a bad network raises ValueError."""
        nets = None if networks is None else tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        return cls(nets, None if numbers is None else frozenset(numbers))

    def wire(self) -> dict[str, Any]:
        return {
            "networks": None if self.networks is None else [str(n) for n in self.networks],
            "numbers": None if self.numbers is None else sorted(self.numbers),
        }

    def source_allowed(self, source: str) -> bool:
        if self.networks is None:
            return True
        try:
            address = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def number_known(self, called: str | None) -> bool:
        if self.numbers is None:
            return True
        if not called:
            return False
        return called in self.numbers or f"+{called}" in self.numbers or called_number(called) in self.numbers

    def verdict(self, source: str, called: str | None) -> Refusal | None:
        """Why an INVITE from ``source`` for ``called`` (Request-URI user) is refused; None: take it."""
        if not self.source_allowed(source):
            return SOURCE
        if not self.number_known(called):
            return UNKNOWN_NUMBER
        return None
