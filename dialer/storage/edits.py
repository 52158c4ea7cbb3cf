"""Edits and removals of a tenant's trunks, agents and do-not-call entries (REST PATCH/DELETE)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from dialer.storage.base import SqlBase, require_owned, threaded
from dialer.storage.records import Conflict, TrunkSpec
from dialer.storage.tables import agents, campaigns, dnc_entries, phone_numbers, trunks

_TRUNK_FIELDS = frozenset(TrunkSpec.__dataclass_fields__)
_AGENT_FIELDS = frozenset({"name", "worker_url", "transfer_number"})


def _in_use(conn: sa.Connection, table: sa.Table, column: str, row_id: UUID) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(table).where(table.c[column] == row_id)) or 0


class DirectoryEdits(SqlBase):
    """Tenant-scoped changes; another tenant's row behaves exactly like a missing one (False)."""

    @threaded
    def update_trunk(self, tenant_id: UUID, trunk_id: UUID, changes: Mapping[str, Any]) -> bool:
        """Change trunk settings (TrunkSpec field names); Conflict when the new name is taken."""
        if unknown := set(changes) - _TRUNK_FIELDS:
            raise ValueError(f"cannot change {sorted(unknown)}")
        values = dict(changes)
        for name in ("allowed_countries", "inbound_cidrs"):  # JSON lists
            if name in values:
                values[name] = list(values[name])
        try:
            with self._engine.begin() as conn:
                require_owned(conn, trunks, trunk_id, tenant_id)
                if values:
                    conn.execute(sa.update(trunks).where(trunks.c.id == trunk_id).values(**values))
        except LookupError:
            return False
        except sa.exc.IntegrityError:
            raise Conflict("a trunk with this name exists already") from None
        return True

    @threaded
    def delete_trunk(self, tenant_id: UUID, trunk_id: UUID) -> bool:
        """Remove a trunk; Conflict while phone numbers still use it (move or delete them first)."""
        with self._engine.begin() as conn:
            try:
                require_owned(conn, trunks, trunk_id, tenant_id)
            except LookupError:
                return False
            if used := _in_use(conn, phone_numbers, "trunk_id", trunk_id):
                raise Conflict(f"{used} phone number(s) use this trunk")
            conn.execute(sa.delete(trunks).where(trunks.c.id == trunk_id))
        return True

    @threaded
    def update_agent(self, tenant_id: UUID, agent_id: UUID, changes: Mapping[str, Any]) -> bool:
        """Change an agent's name, worker URL or transfer number."""
        if unknown := set(changes) - _AGENT_FIELDS:
            raise ValueError(f"cannot change {sorted(unknown)}")
        with self._engine.begin() as conn:
            try:
                require_owned(conn, agents, agent_id, tenant_id)
            except LookupError:
                return False
            if changes:
                conn.execute(sa.update(agents).where(agents.c.id == agent_id).values(**changes))
        return True

    @threaded
    def delete_agent(self, tenant_id: UUID, agent_id: UUID) -> bool:
        """Remove an agent; Conflict while campaigns or phone numbers are linked to it."""
        with self._engine.begin() as conn:
            try:
                require_owned(conn, agents, agent_id, tenant_id)
            except LookupError:
                return False
            numbers = _in_use(conn, phone_numbers, "agent_id", agent_id)
            used_by = _in_use(conn, campaigns, "agent_id", agent_id)
            if numbers or used_by:
                raise Conflict(f"{used_by} campaign(s) and {numbers} phone number(s) use this agent")
            conn.execute(sa.delete(agents).where(agents.c.id == agent_id))
        return True

    @threaded
    def remove_dnc(self, tenant_id: UUID, phone: str) -> bool:
        """Take ``phone`` off the list; prospects it stopped stay stopped (re-upload them to call again)."""
        with self._engine.begin() as conn:
            removed = conn.execute(
                sa.delete(dnc_entries).where(
                    dnc_entries.c.tenant_id == tenant_id, dnc_entries.c.phone == phone
                )
            )
            return removed.rowcount == 1
