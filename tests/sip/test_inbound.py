"""Inbound calls from SIPp callers: imported numbers are answered, others refused, full workers say 486."""

from __future__ import annotations

from uuid import uuid4

import pytest

from dialer.ports import CallAnswered
from sip.events import InboundAnswered, InboundEnded, InboundOffered, InboundRoute
from tests.sip.peers import GatewayFactory, until

pytestmark = pytest.mark.timeout(30)  # each test; SIPp and workers are killed at teardown

IMPORTED = "+14155550199"


async def test_imported_number_is_answered_and_reported(gateway: GatewayFactory, sipp) -> None:
    gw = await gateway()
    route = InboundRoute(agent_id=uuid4(), tenant_id=uuid4(), number_id=uuid4())
    gw.routes[IMPORTED] = route
    # Trunks often send the number without "+": the router still gets E.164.
    caller = sipp("uac_answer", service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{gw.port}")
    ended = await gw.inbound_ended()
    offered = next(e for e in gw.inbound if isinstance(e, InboundOffered))
    answered = next(e for e in gw.inbound if isinstance(e, InboundAnswered))
    assert (offered.called, offered.caller, offered.route, offered.worker) == (
        IMPORTED,
        "+14155550123",
        route,
        "sip-0",
    )
    assert offered.call_id == answered.call_id == ended.call_id
    assert (ended.sip_code, ended.confirmed, ended.q850_cause, ended.route) == (200, True, 16, route)
    assert ended.offered_at <= ended.answered_at <= ended.at
    assert 0.4 < (ended.at - ended.answered_at).total_seconds() < 2  # the caller talked 500 ms
    assert await caller.finished() == 0
    assert gw.events == []  # inbound calls never show up as outbound attempts


async def test_unknown_number_gets_404(gateway: GatewayFactory, sipp) -> None:
    gw = await gateway()
    caller = sipp("uac_refused", service="14155550000", target=f"127.0.0.1:{gw.port}")
    ended = await gw.inbound_ended()
    assert (ended.sip_code, ended.confirmed, ended.route, ended.called) == (404, False, None, "+14155550000")
    assert not any(isinstance(e, InboundOffered) for e in gw.inbound)
    assert await caller.finished() == 0


async def test_full_worker_answers_486(gateway: GatewayFactory, sipp) -> None:
    gw = await gateway()
    gw.routes[IMPORTED] = InboundRoute(uuid4(), uuid4(), uuid4())
    trunk_peer = sipp("answer", calls=4)
    trunk = gw.trunk(trunk_peer.port)
    requests = [gw.request(trunk) for _ in range(gw.gateway.capacity())]
    for request in requests:
        await gw.gateway.place(request)
    await until(lambda: sum(isinstance(e, CallAnswered) for e in gw.events) == len(requests), 5)
    caller = sipp("uac_refused", service=IMPORTED, target=f"127.0.0.1:{gw.port}")
    ended = await gw.inbound_ended()
    assert (ended.sip_code, ended.route, ended.worker) == (486, None, "sip-0")
    assert await caller.finished() == 0
    for request in requests:
        await gw.gateway.hangup(request.attempt_id)
    for request in requests:
        assert (await gw.ended(request.attempt_id)).confirmed
    assert isinstance(ended, InboundEnded)


async def test_inbound_call_is_hung_up_on_request(gateway: GatewayFactory, sipp) -> None:
    """POST /calls/{id}/hangup reaches inbound calls too: the caller gets our BYE."""
    gw = await gateway()
    gw.routes[IMPORTED] = InboundRoute(agent_id=uuid4(), tenant_id=uuid4(), number_id=uuid4())
    caller = sipp("uac_hold", service=IMPORTED, target=f"127.0.0.1:{gw.port}")
    answered = await until(lambda: next((e for e in gw.inbound if isinstance(e, InboundAnswered)), None), 10)
    await gw.gateway.hangup(answered.call_id)
    ended = await gw.inbound_ended()
    assert (ended.call_id, ended.confirmed) == (answered.call_id, True)
    assert await caller.finished() == 0  # it received BYE (not its 10 s timeout) and said 200
