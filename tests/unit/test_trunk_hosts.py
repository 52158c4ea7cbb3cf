"""Which host a trunk's INVITEs go to, and whether it resolves (real resolver, loopback names only)."""

from __future__ import annotations

import pytest

from api.services.trunks import dialled_host, resolves


@pytest.mark.parametrize(
    ("host", "proxy", "expected"),
    [
        ("sip.carrier.example", None, "sip.carrier.example"),
        ("sip.carrier.example", "", "sip.carrier.example"),
        ("sip.carrier.example", "sip:proxy.example.net:5060;lr", "proxy.example.net"),
        ("sip.carrier.example", "<sips:edge@proxy.example.net;transport=tls>", "proxy.example.net"),
        ("sip.carrier.example", "sip:[2001:db8::1]:5060;lr", "2001:db8::1"),
        ("sip.carrier.example", "proxy.example.net", "proxy.example.net"),
        ("sip.carrier.example", "10.0.0.5:5070", "10.0.0.5"),
    ],
)
def test_dialled_host(host: str, proxy: str | None, expected: str) -> None:
    assert dialled_host(host, proxy) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("nonexistent.invalid", False),
        ("", False),
        ("a" * 300, False),
        ("bad host name", False),
    ],
)
async def test_resolves(host: str, expected: bool) -> None:
    assert await resolves(host, within=3.0) is expected
