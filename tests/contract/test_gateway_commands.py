"""Call commands from API nodes to gateway nodes (dialer/commands.py), over every coordinator.

The gateways here are fakes of the runtime's side (``LocalGateway``); the real runtime behind them
is exercised end to end by tests/e2e/test_scale_out.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from api.runtime import CallRejected, GatewayUnavailable
from dialer.commands import GATEWAYS, GatewayClient, GatewayServer
from dialer.coordination import MemoryCoordinator, keys, make_coordinator
from dialer.ports import Coordinator
from dialer.roles import RoutedRuntime

TIMEOUT = 0.5


@dataclass
class FakeGateway:
    """A gateway node's runtime: the calls it holds, and every action it was asked to carry out."""

    name: str
    held: set[UUID] = field(default_factory=set)
    free: bool = True
    refuse: str | None = None
    done: list[tuple[str, UUID]] = field(default_factory=list)
    wakes: int = 0

    def campaigns_changed(self) -> None:
        self.wakes += 1

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        if self.refuse:
            raise CallRejected(self.refuse)
        self.held.add(call_id)
        self.done.append(("place", call_id))

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        self.done.append(("hangup", call_id))

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        if self.refuse:
            raise CallRejected(self.refuse)
        self.done.append((f"transfer:{mode}", call_id))

    async def health(self) -> dict[str, dict[str, object]]:
        return {}

    def holds_call(self, call_id: UUID) -> bool:
        return call_id in self.held

    def has_free_line(self) -> bool:
        return self.free


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def coordinator(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    if request.param == "memory":
        yield MemoryCoordinator()
        return
    url: str = request.getfixturevalue("redis_url")
    namespace = f"dialer-test-{uuid.uuid4().hex}"
    found = make_coordinator(url, namespace=namespace)
    try:
        yield found
    finally:
        await found.close()
        cleaner = Redis.from_url(url)
        try:
            stale = [key async for key in cleaner.scan_iter(match=f"{keys.prefix(namespace)}*")]
            if stale:
                await cleaner.delete(*stale)
        finally:
            await cleaner.aclose()


POP = 0.1  # how long a fake gateway blocks on its queues before it looks at its free lines again


async def lines_filled(gateways: list[FakeGateway]) -> None:
    """Mark the gateways full, and let each one's pending pop (which may still include new calls) end."""
    for gateway in gateways:
        gateway.free = False
    await asyncio.sleep(3 * POP)


@pytest.fixture
async def gateways(coordinator: Coordinator) -> AsyncIterator[list[FakeGateway]]:
    """Two gateway nodes serving commands over the coordinator."""
    fakes = [FakeGateway("gw-a"), FakeGateway("gw-b")]
    servers = [GatewayServer(coordinator, fake.name, fake, pop_seconds=POP) for fake in fakes]
    for server in servers:
        await server.start()
    try:
        yield fakes
    finally:
        for server in servers:
            await server.stop()


async def test_no_gateway_alive_is_a_clear_error_at_once(coordinator: Coordinator) -> None:
    client = GatewayClient(coordinator, timeout=30.0)  # would hang for a minute if it waited
    for action in (
        client.place_call(uuid4(), uuid4()),
        client.hangup_call(uuid4(), uuid4()),
        client.transfer_call(uuid4(), uuid4(), "+442079460300", "auto"),
    ):
        with pytest.raises(GatewayUnavailable, match="no SIP gateway is running"):
            await asyncio.wait_for(action, 5)
    health = (await client.health())["gateways"]
    assert (health["healthy"], health["alive"], health["gates_readiness"]) == (False, 0, False)


async def test_a_new_call_is_placed_by_exactly_one_gateway(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    assert await coordinator.members(GATEWAYS) == ["gw-a", "gw-b"]
    calls = [uuid4() for _ in range(8)]
    await asyncio.gather(*(client.place_call(uuid4(), call) for call in calls))
    placed = [call for gateway in gateways for kind, call in gateway.done if kind == "place"]
    assert sorted(placed) == sorted(calls), "each call placed once, none twice"


async def test_a_full_gateway_leaves_new_calls_to_the_others(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    full, free = gateways
    await lines_filled([full])
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    for _ in range(4):
        await client.place_call(uuid4(), uuid4())
    assert full.done == [] and len(free.done) == 4


async def test_a_refused_placement_comes_back_as_call_rejected(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    for gateway in gateways:
        gateway.refuse = "the caller ID or its trunk is at its concurrent-call cap"
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    with pytest.raises(CallRejected, match="concurrent-call cap") as raised:
        await client.place_call(uuid4(), uuid4())
    assert not isinstance(raised.value, GatewayUnavailable)


async def test_no_gateway_with_a_free_line_times_out_as_unavailable(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    await lines_filled(gateways)
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    with pytest.raises(GatewayUnavailable, match="no SIP gateway took the call"):
        await asyncio.wait_for(client.place_call(uuid4(), uuid4()), 10)
    for gateway in gateways:
        gateway.free = True
    await asyncio.sleep(2 * TIMEOUT)  # the command expired unread: nobody places it late
    assert all(gateway.done == [] for gateway in gateways)


async def test_hangup_and_transfer_reach_the_gateway_holding_the_call(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    owner, other = gateways
    call = uuid4()
    owner.held.add(call)
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    await client.hangup_call(uuid4(), call)
    await client.transfer_call(uuid4(), call, "+442079460300", "refer")
    assert owner.done == [("hangup", call), ("transfer:refer", call)]
    assert other.done == []
    owner.refuse = "a transfer of this call is already under way"
    with pytest.raises(CallRejected, match="already under way"):
        await client.transfer_call(uuid4(), call, "+442079460300", "auto")


async def test_a_call_no_gateway_holds_is_refused_once_all_have_answered(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    client = GatewayClient(coordinator, timeout=30.0)  # every gateway answers long before this
    with pytest.raises(CallRejected, match="not up on any SIP gateway") as raised:
        await asyncio.wait_for(client.hangup_call(uuid4(), uuid4()), 10)
    assert not isinstance(raised.value, GatewayUnavailable)


async def test_a_listed_gateway_that_does_not_answer_is_reported_unavailable(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    await coordinator.announce(GATEWAYS, "gw-dead", 30.0)  # listed, but nothing serves its inbox
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    with pytest.raises(GatewayUnavailable, match="1 SIP gateway"):
        await asyncio.wait_for(client.hangup_call(uuid4(), uuid4()), 10)


async def test_campaign_changes_wake_every_gateway(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    client = GatewayClient(coordinator, timeout=TIMEOUT)
    client.campaigns_changed()
    await client.stop()  # the broadcast is sent
    for _ in range(100):
        if all(gateway.wakes for gateway in gateways):
            break
        await asyncio.sleep(0.02)
    assert [gateway.wakes for gateway in gateways] == [1, 1]


async def test_a_stopped_gateway_leaves_the_group(coordinator: Coordinator) -> None:
    server = GatewayServer(coordinator, "gw-x", FakeGateway("gw-x"), pop_seconds=POP)
    await server.start()
    assert await coordinator.members(GATEWAYS) == ["gw-x"]
    await server.stop()
    assert await coordinator.members(GATEWAYS) == []


async def test_an_all_node_acts_on_its_own_calls_and_asks_for_the_others(
    coordinator: Coordinator, gateways: list[FakeGateway]
) -> None:
    here = FakeGateway("all-node")
    mine, theirs = uuid4(), uuid4()
    here.held.add(mine)
    gateways[1].held.add(theirs)
    routed = RoutedRuntime(here, GatewayClient(coordinator, timeout=TIMEOUT))
    await routed.hangup_call(uuid4(), mine)
    await routed.hangup_call(uuid4(), theirs)
    assert here.done == [("hangup", mine)]
    assert gateways[1].done == [("hangup", theirs)]
