"""A call's transfer record (target, method, result, start and end) on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import dialer.storage
from dialer.storage import SqlStore
from dialer.storage.tables import attempts
from tests.contract.test_store import T0, add, make_world, store, store_url

__all__ = ["store", "store_url"]  # the backend-parametrised fixtures of the store contract suite

HUMAN = "+15550100042"
MIGRATIONS = Path(dialer.storage.__file__).parent / "migrations"


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


async def test_every_transfer_of_a_call_is_kept_in_order(store: SqlStore) -> None:
    world = await make_world(store)
    call = await store.create_call(world.tenant, "+15550001000", "+15550100001", created_at=T0)
    first, second = T0 + timedelta(seconds=5), T0 + timedelta(seconds=30)

    # The first: asked as auto, refused by the trunk's REFER (603), given up; the call stays up.
    assert await store.record_transfer(call, HUMAN, "auto", "pending", started_at=first)
    settled_at = first + timedelta(seconds=2)
    assert await store.record_transfer(
        call, None, "refer", "failed (declined)", started_at=first, ended_at=settled_at, sip_code=603
    )
    # The second, to another human, bridged.
    other_human = "+15550100043"
    assert await store.record_transfer(call, other_human, "bridge", "pending", started_at=second)
    mid = await store.get_attempt(call)
    assert mid is not None and [t["result"] for t in mid.transfers] == ["failed (declined)", "pending"]
    bridged_at = second + timedelta(seconds=4)
    assert await store.record_transfer(
        call,
        None,
        "bridge",
        "bridged",
        started_at=second + timedelta(seconds=1),
        ended_at=bridged_at,
        sip_code=200,
    )

    done = await store.get_attempt(call)
    assert done is not None
    assert done.transfers == [
        {
            "to": HUMAN,
            "method": "refer",
            "result": "failed (declined)",
            "sip_code": 603,
            "started_at": first.isoformat(),
            "ended_at": settled_at.isoformat(),
        },
        {
            "to": other_human,
            "method": "bridge",
            "result": "bridged",
            "sip_code": 200,
            "started_at": second.isoformat(),  # when it was asked, not when the SIP worker began
            "ended_at": bridged_at.isoformat(),
        },
    ]
    # The single-transfer columns are the last one.
    assert (done.transfer_to, done.transfer_method, done.transfer_result) == (
        other_human,
        "bridge",
        "bridged",
    )
    assert (done.transfer_started_at, done.transfer_ended_at) == (second, bridged_at)

    # A REFER from the far end has no pending entry: it is added settled.
    assert await store.record_transfer(
        call,
        None,
        "inbound_refer",
        "completed",
        started_at=T0 + timedelta(minutes=1),
        ended_at=T0 + timedelta(minutes=1),
        sip_code=200,
    )
    last = await store.get_attempt(call)
    assert last is not None and len(last.transfers) == 3 and last.transfers[-1]["to"] is None
    assert last.transfers[-1]["method"] == "inbound_refer" and last.transfers[:2] == done.transfers
    assert not await store.record_transfer(uuid4(), HUMAN, "auto", "pending"), "an unknown call"


async def test_a_call_transferred_before_the_transfers_list_gets_a_one_entry_list(store: SqlStore) -> None:
    world = await make_world(store)
    call = await store.create_call(world.tenant, "+15550001000", "+15550100001", created_at=T0)
    untouched = await store.create_call(world.tenant, "+15550001000", "+15550100002", created_at=T0)
    config = Config(str(MIGRATIONS.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    settled = T0 + timedelta(seconds=3)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")  # as the database was before revision 0006
        # Only the columns that revision had: the row as an older release left it.
        old_columns = {"transfer_to": HUMAN, "transfer_method": "bridge", "transfer_result": "bridged"}
        times = {"transfer_started_at": T0, "transfer_ended_at": settled}
        conn.execute(sa.update(attempts).where(attempts.c.id == call).values(**old_columns, **times))
    store.migrate()
    before = await store.get_attempt(call)
    assert before is not None and before.transfers == [
        {
            "to": HUMAN,
            "method": "bridge",
            "result": "bridged",
            "sip_code": None,
            "started_at": T0.isoformat(),
            "ended_at": settled.isoformat(),
        }
    ]
    other = await store.get_attempt(untouched)
    assert other is not None and other.transfers == []


async def test_downgrading_every_revision_and_back_keeps_every_row(store: SqlStore) -> None:
    """SQLite once dropped and recreated a table to drop a column: with foreign keys on, dropping
    ``tenants`` or ``campaigns`` that way cascaded into every call and prospect of the database."""
    world = await make_world(store)
    (prospect,) = await add(store, world, "+15550100003")
    call = await store.create_call(world.tenant, "+15550001000", "+15550100001", created_at=T0)
    config = Config(str(MIGRATIONS.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    store.migrate()
    assert await store.tenant_exists(world.tenant)
    assert await store.get_attempt(call) is not None
    assert await store.get_prospect(prospect.id) is not None
    assert [c.id for c in await store.list_campaigns(world.tenant)] == [world.campaign]
