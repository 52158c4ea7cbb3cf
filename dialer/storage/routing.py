"""Lookups the SIP gateway makes at call time: a trunk by id, where an inbound number goes, a worker URL."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from dialer.storage.base import SqlBase, threaded
from dialer.storage.records import TrunkRecord, TrunkSpec
from dialer.storage.tables import agents, phone_numbers, tenants, trunks


@dataclass(frozen=True)
class NumberRoute:
    """An imported number that answers inbound calls: its tenant and linked agent."""

    number_id: UUID
    tenant_id: UUID
    agent_id: UUID
    trunk_id: UUID


def trunk_from_row(row: sa.RowMapping) -> TrunkRecord:
    """A TrunkRecord from a trunks row (allowed_countries and inbound_cidrs are stored as JSON lists)."""
    lists = ("allowed_countries", "inbound_cidrs")
    values: dict[str, Any] = {f.name: row[f.name] for f in fields(TrunkSpec) if f.name not in lists}
    values |= {name: tuple(row[name] or ()) for name in lists}
    spec = TrunkSpec(**values)
    return TrunkRecord(id=row["id"], tenant_id=row["tenant_id"], spec=spec)


class RoutingLookups(SqlBase):
    """Point reads by primary or unique key, one indexed probe each."""

    @threaded
    def get_trunk(self, trunk_id: UUID) -> TrunkRecord | None:
        """One trunk, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(trunks).where(trunks.c.id == trunk_id)).mappings().first()
        return trunk_from_row(row) if row is not None else None

    @threaded
    def inbound_numbers(self) -> set[str]:
        """Every number an inbound call is answered on (active, linked to an agent), E.164, all tenants:
        the SIP workers refuse calls to any other with 404 without asking (sip/screen.py)."""
        query = sa.select(phone_numbers.c.number).where(
            phone_numbers.c.active.is_(True), phone_numbers.c.agent_id.is_not(None)
        )
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars())

    @threaded
    def inbound_route(self, number: str) -> NumberRoute | None:
        """The active imported number ``number`` (E.164) linked to an agent, or None (answer 404).

        Two tenants may hold the same number (a port in progress); the one imported first wins.
        """
        query = (
            sa.select(
                phone_numbers.c.id,
                phone_numbers.c.tenant_id,
                phone_numbers.c.agent_id,
                phone_numbers.c.trunk_id,
            )
            .where(
                phone_numbers.c.number == number,
                phone_numbers.c.active.is_(True),
                phone_numbers.c.agent_id.is_not(None),
            )
            .order_by(phone_numbers.c.created_at)
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return NumberRoute(row.id, row.tenant_id, row.agent_id, row.trunk_id)

    @threaded
    def agent_worker_url(self, agent_id: UUID) -> str | None:
        """Where the agent's audio goes (``ws(s)://`` or ``sip:``), or None for an unknown agent."""
        with self._engine.connect() as conn:
            url: str | None = conn.scalar(sa.select(agents.c.worker_url).where(agents.c.id == agent_id))
        return url

    @threaded
    def did_cap(self, number_id: UUID) -> int | None:
        """The DID's concurrent-call cap, or None for an unknown number."""
        with self._engine.connect() as conn:
            cap: int | None = conn.scalar(
                sa.select(phone_numbers.c.max_concurrent_calls).where(phone_numbers.c.id == number_id)
            )
        return cap

    @threaded
    def tenant_call_limits(self) -> dict[UUID, int]:
        """Every tenant's longest allowed call in seconds (the toll-fraud guard the gateway enforces)."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(tenants.c.id, tenants.c.max_call_duration_seconds))
            return {row.id: row.max_call_duration_seconds for row in rows}
