"""SIP trunks as the gateway dials through them, and the destination checks made before any INVITE."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from dialer.phone import InvalidPhoneNumber, country_of, is_premium_or_shared_cost


class Transport(StrEnum):
    """How SIP reaches the trunk."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


@dataclass(frozen=True)
class TrunkConfig:
    """One provider trunk: where it is, how we authenticate, and where it may call.

    ``password`` is kept out of ``repr`` so a logged config never carries it. ``allowed_countries``
    holds ISO 3166 alpha-2 codes; empty means any country.
    """

    id: UUID
    host: str
    port: int = 5060
    transport: Transport = Transport.UDP
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    register: bool = False
    register_expires: int = 300
    outbound_proxy: str | None = None  # a SIP URI, e.g. "sip:proxy.example.net:5060"
    allowed_countries: frozenset[str] = frozenset()
    from_domain: str | None = None  # host of the From/P-Asserted-Identity URIs; the trunk host if unset
    strip_plus: bool = False  # send "15551234567" instead of "+15551234567" as the user part
    refer_uri_style: str = "sip"  # Refer-To of a human transfer: "sip" (sip:+1…@trunk) or "tel" (tel:+1…)
    accept_inbound_refer: bool = False  # a REFER from the far end of a call is accepted, else 603
    # Codecs to offer after PCMU and PCMA (pjsua ids or prefixes: "G722", "GSM"). The offer is the
    # SIP worker's, so another trunk's calls on the same worker offer them too (and the INVITE grows).
    codecs: tuple[str, ...] = ()

    def _user(self, e164: str) -> str:
        return e164.lstrip("+") if self.strip_plus else e164

    def _params(self) -> str:
        return "" if self.transport is Transport.UDP else f";transport={self.transport.value}"

    def request_uri(self, e164: str) -> str:
        """The Request-URI of a call to ``e164`` through this trunk."""
        return f"sip:{self._user(e164)}@{self.host}:{self.port}{self._params()}"

    def refer_uri(self, e164: str) -> str:
        """The Refer-To URI that hands a call's far end to ``e164`` (per ``refer_uri_style``)."""
        return f"tel:{e164}" if self.refer_uri_style == "tel" else self.request_uri(e164)

    def caller_uri(self, e164: str) -> str:
        """The URI that presents ``e164`` (a DID) as the caller, for From and P-Asserted-Identity."""
        return f"sip:{self._user(e164)}@{self.from_domain or self.host}"

    def account(self, register: bool) -> dict[str, Any]:
        """What a SIP worker needs to build this trunk's pjsua2 account (plain data for the pipe)."""
        user = self.username or "gateway"
        return {
            "trunk": str(self.id),
            "id_uri": f"sip:{user}@{self.host}",
            "registrar": f"sip:{self.host}:{self.port}{self._params()}" if register and self.register else "",
            "register_expires": self.register_expires,
            "username": self.username or "",
            "password": self.password or "",
            "proxy": self.outbound_proxy or "",
            "accept_refer": self.accept_inbound_refer,
            "codecs": self.codecs,
        }


def refusal(trunk: TrunkConfig, e164: str) -> str | None:
    """Why ``e164`` may not be called through ``trunk``, or None when it may.

    The reason never contains the number: it ends up in logs and attempt records.
    """
    try:
        premium = is_premium_or_shared_cost(e164)
    except InvalidPhoneNumber as exc:
        return f"destination is {exc.reason}"
    country = country_of(e164)
    if trunk.allowed_countries and country not in trunk.allowed_countries:
        return f"destination country {country or 'unknown'} is not allowed on this trunk"
    if premium:
        return "premium-rate and shared-cost destinations are never called"
    return None
