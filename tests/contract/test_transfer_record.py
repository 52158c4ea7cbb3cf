"""A call's transfer record (target, method, result, start and end) on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

from dialer.storage import SqlStore
from tests.contract.test_store import T0, make_world, store, store_url

__all__ = ["store", "store_url"]  # the backend-parametrised fixtures of the store contract suite

HUMAN = "+15550100042"


async def test_a_transfer_keeps_its_request_time_and_gets_its_end(store: SqlStore) -> None:
    world = await make_world(store)
    call = await store.create_call(world.tenant, "+15550001000", "+15550100001", created_at=T0)
    asked, sip_started, settled = T0, T0 + timedelta(seconds=0.25), T0 + timedelta(seconds=3)

    assert await store.record_transfer(call, HUMAN, "auto", "pending", started_at=asked)
    pending = await store.get_attempt(call)
    assert pending is not None
    assert (pending.transfer_to, pending.transfer_result) == (HUMAN, "pending")
    assert (pending.transfer_started_at, pending.transfer_ended_at) == (asked, None)

    # The SIP worker's own start time does not replace the time the transfer was asked for.
    assert await store.record_transfer(
        call, None, "bridge", "bridged", started_at=sip_started, ended_at=settled
    )
    done = await store.get_attempt(call)
    assert done is not None
    assert (done.transfer_to, done.transfer_method, done.transfer_result) == (HUMAN, "bridge", "bridged")
    assert (done.transfer_started_at, done.transfer_ended_at) == (asked, settled)

    # A transfer with no pending row (a REFER from the far end) takes the start it is given.
    other = await store.create_call(world.tenant, "+15550001000", "+15550100002", created_at=T0)
    assert await store.record_transfer(
        other, None, "inbound_refer", "completed", started_at=sip_started, ended_at=settled
    )
    inbound = await store.get_attempt(other)
    assert inbound is not None and (inbound.transfer_started_at, inbound.transfer_ended_at) == (
        sip_started,
        settled,
    )

    # A new request on the same call starts afresh: a new start, no end yet.
    later = T0 + timedelta(seconds=10)
    assert await store.record_transfer(call, HUMAN, "refer", "pending", started_at=later)
    again = await store.get_attempt(call)
    assert again is not None and (again.transfer_started_at, again.transfer_ended_at) == (later, None)
