"""Fixtures for the SIP tests: SIPp peers killed at teardown, gateways stopped at teardown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from sip.events import InboundRoute
from sip.launcher import SipGateway
from sip.trunks import TrunkConfig
from tests.sip.peers import SIPP, GatewayFactory, Harness, Sipp, free_port
from tests.system_tools import missing_message, required


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a SIP test that waits several seconds on purpose")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SIPP is None:
        if required():
            raise pytest.UsageError(missing_message("sipp", "sip-tester"))
        skip = pytest.mark.skip(reason=missing_message("sipp", "sip-tester"))
        for item in items:
            if "sipp" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    started: list[Sipp] = []

    def start(scenario: str, **kwargs: Any) -> Sipp:
        peer = Sipp(tmp_path).start(scenario, **kwargs)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.kill()


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayFactory]:
    started: list[Harness] = []

    async def make(workers: int = 1, **kwargs: Any) -> Harness:
        port = free_port(workers)
        trunks: dict[UUID, TrunkConfig] = {}
        routes: dict[str, InboundRoute] = {}

        async def lookup(trunk_id: UUID) -> TrunkConfig | None:
            return trunks.get(trunk_id)

        async def route(number: str) -> InboundRoute | None:
            return routes.get(number)

        gateway = SipGateway(
            lookup,
            route,
            port=port,
            workers=workers,
            rtp_port=free_port(40 * workers),
            rtp_ports_per_worker=40,
            **kwargs,
        )
        harness = Harness(gateway, port, trunks, routes=routes)
        gateway.on_event = harness.events.append
        gateway.on_inbound = harness.inbound.append
        await gateway.start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        await harness.gateway.stop()
