"""Admin methods for who may dial and with what: tenants, API keys, trunks, agents, numbers, DNC."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import asdict, fields
from uuid import UUID, uuid4

import sqlalchemy as sa

from dialer.domain import ProspectState
from dialer.storage.base import SqlBase, insert_ignoring_duplicates, require_owned, threaded, utcnow
from dialer.storage.records import (
    ApiKeyRecord,
    Conflict,
    NumberRecord,
    TenantRecord,
    TrunkRecord,
    TrunkSpec,
)
from dialer.storage.routing import trunk_from_row
from dialer.storage.tables import agents, api_keys, dnc_entries, phone_numbers, prospects, tenants, trunks

SECRET_SCOPE = "secret"
PUBLISHABLE_SCOPE = "publishable"
_PREFIX_LENGTH = len("sk_live_") + 4  # enough to tell a tenant's keys apart, far too little to guess one
# Plain str values: the columns are strings, and drivers differ in how they adapt Enum members.
_STOPPABLE = [s.value for s in (ProspectState.PENDING, ProspectState.HELD, ProspectState.DIALING)]


def hash_api_key(plaintext: str) -> str:
    """The SHA-256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _key_match(key: UUID | str) -> sa.ColumnElement[bool]:
    """Which api_keys row ``key`` names: an id (UUID or its text), a full key (by hash) or a prefix."""
    if isinstance(key, UUID):
        return api_keys.c.id == key
    text = key.strip()
    try:
        return api_keys.c.id == UUID(text)
    except ValueError:
        pass
    if len(text) > _PREFIX_LENGTH and text.startswith(("sk_live_", "pk_live_")):
        # A whole key: never compared in clear, looked up by the digest it is stored under.
        return api_keys.c.key_hash == hash_api_key(text)
    return api_keys.c.prefix == text


class DirectoryAdmin(SqlBase):
    """Tenants and what they dial with. Used by the CLI and the REST API, never by the dispatch loop."""

    @threaded
    def create_tenant(
        self, name: str, default_region: str = "US", *, max_call_duration_seconds: int = 3600
    ) -> UUID:
        """A new tenant (the seed's "client")."""
        tenant_id = uuid4()
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(tenants).values(
                    id=tenant_id,
                    name=name,
                    default_region=default_region,
                    max_call_duration_seconds=max_call_duration_seconds,
                    created_at=utcnow(),
                )
            )
        return tenant_id

    @threaded
    def tenant_exists(self, tenant_id: UUID) -> bool:
        """Whether the tenant exists."""
        with self._engine.connect() as conn:
            return conn.scalar(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)) is not None

    @threaded
    def create_api_key(self, tenant_id: UUID, publishable: bool = False) -> tuple[UUID, str]:
        """A new key: ``(key_id, plaintext)``. The plaintext is returned this once and never stored."""
        scope, kind = (PUBLISHABLE_SCOPE, "pk") if publishable else (SECRET_SCOPE, "sk")
        plaintext = f"{kind}_live_{secrets.token_hex(24)}"
        key_id = uuid4()
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(api_keys).values(
                    id=key_id,
                    tenant_id=tenant_id,
                    key_hash=hash_api_key(plaintext),
                    prefix=plaintext[:_PREFIX_LENGTH],
                    scope=scope,
                    created_at=utcnow(),
                )
            )
        return key_id, plaintext

    @threaded
    def resolve_api_key(self, plaintext: str) -> tuple[UUID, str] | None:
        """``(tenant_id, scope)`` of a live key, or None for an unknown or revoked one."""
        found = self._live_key(plaintext)
        return (found[1], found[2]) if found is not None else None

    @threaded
    def resolve_api_key_id(self, plaintext: str) -> tuple[UUID, UUID, str] | None:
        """``(key_id, tenant_id, scope)`` of a live key (the Twilio-compatible routes accept the key's
        id as the Basic-auth user), or None for an unknown or revoked one."""
        return self._live_key(plaintext)

    def _live_key(self, plaintext: str) -> tuple[UUID, UUID, str] | None:
        digest = hash_api_key(plaintext)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    api_keys.c.id,
                    api_keys.c.key_hash,
                    api_keys.c.tenant_id,
                    api_keys.c.scope,
                    api_keys.c.revoked_at,
                ).where(api_keys.c.key_hash == digest)
            ).first()
        # The lookup is by hash, so its timing says nothing about the key; compare_digest keeps the
        # final check constant-time anyway, should the lookup ever become a prefix match.
        if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
            return None
        return row.id, row.tenant_id, row.scope

    @threaded
    def revoke_api_key(self, key: UUID | str) -> bool:
        """Revoke by key id, by the full plaintext key or by display prefix (``sk_live_ab12``).

        ``key`` may be a UUID or its text (what a CLI user pastes); a full key is matched by its
        SHA-256, like ``resolve_api_key``. False when nothing live matched; Conflict when a prefix
        matches several live keys: revoke those by id.
        """
        with self._engine.begin() as conn:
            match = _key_match(key)
            ids = conn.scalars(sa.select(api_keys.c.id).where(match, api_keys.c.revoked_at.is_(None))).all()
            if len(ids) > 1:
                raise Conflict(f"{len(ids)} live keys start with {key!r}; revoke by key id")
            if not ids:
                return False
            conn.execute(sa.update(api_keys).where(api_keys.c.id == ids[0]).values(revoked_at=utcnow()))
        return True

    @threaded
    def list_tenants(self) -> list[TenantRecord]:
        """Every tenant, oldest first (the CLI's ``tenants list``)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*(tenants.c[f.name] for f in fields(TenantRecord))).order_by(
                    tenants.c.created_at, tenants.c.name
                )
            ).mappings()
            return [TenantRecord(**row) for row in rows]

    @threaded
    def list_api_keys(self, tenant_id: UUID) -> list[ApiKeyRecord]:
        """The tenant's keys, newest first, revoked ones included."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*(api_keys.c[f.name] for f in fields(ApiKeyRecord)))
                .where(api_keys.c.tenant_id == tenant_id)
                .order_by(api_keys.c.created_at.desc())
            ).mappings()
            return [ApiKeyRecord(**row) for row in rows]

    @threaded
    def create_trunk(self, tenant_id: UUID, spec: TrunkSpec) -> UUID:
        """A new SIP trunk; Conflict when the tenant already has one with that name."""
        trunk_id = uuid4()
        values = asdict(spec) | {
            "allowed_countries": list(spec.allowed_countries),
            "inbound_cidrs": list(spec.inbound_cidrs),
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(trunks).values(id=trunk_id, tenant_id=tenant_id, **values))
        except sa.exc.IntegrityError:
            raise Conflict(f"trunk {spec.name!r} already exists for this tenant") from None
        return trunk_id

    @threaded
    def list_trunks(self, tenant_id: UUID | None = None) -> list[TrunkRecord]:
        """Every trunk, or one tenant's, by name."""
        query = sa.select(trunks).order_by(trunks.c.name)
        if tenant_id is not None:
            query = query.where(trunks.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            return [trunk_from_row(row) for row in conn.execute(query).mappings()]

    @threaded
    def create_agent(
        self, tenant_id: UUID, name: str, worker_url: str, transfer_number: str | None = None
    ) -> UUID:
        """A voice worker (``wss://...`` media-stream URL or ``sip:`` URI) calls are bridged to."""
        agent_id = uuid4()
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(agents).values(
                    id=agent_id,
                    tenant_id=tenant_id,
                    name=name,
                    worker_url=worker_url,
                    transfer_number=transfer_number,
                )
            )
        return agent_id

    @threaded
    def import_number(
        self,
        tenant_id: UUID,
        number: str,
        trunk_id: UUID,
        *,
        country: str,
        agent_id: UUID | None = None,
        label: str = "",
        max_concurrent_calls: int = 1,
        daily_cap: int | None = None,
        managed: bool = False,
        active: bool = True,
    ) -> UUID:
        """Add a DID (E.164 ``number``, ISO ``country``) on one of the tenant's trunks.

        ``managed`` puts it in the operator's shared pool, used by campaigns with ``use_vanira_managed``.
        Conflict when the tenant has the number already; LookupError for another tenant's trunk or agent.
        """
        number_id = uuid4()
        try:
            with self._engine.begin() as conn:
                require_owned(conn, trunks, trunk_id, tenant_id)
                if agent_id is not None:
                    require_owned(conn, agents, agent_id, tenant_id)
                conn.execute(
                    sa.insert(phone_numbers).values(
                        id=number_id,
                        tenant_id=tenant_id,
                        number=number,
                        country=country.upper(),
                        trunk_id=trunk_id,
                        agent_id=agent_id,
                        label=label,
                        max_concurrent_calls=max_concurrent_calls,
                        daily_cap=daily_cap,
                        active=active,
                        managed=managed,
                        created_at=utcnow(),
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict("number already exists in system") from None
        return number_id

    @threaded
    def list_numbers(self, tenant_id: UUID) -> list[NumberRecord]:
        """The tenant's own numbers (not the managed pool of other tenants), by number."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*(phone_numbers.c[f.name] for f in fields(NumberRecord)))
                .where(phone_numbers.c.tenant_id == tenant_id)
                .order_by(phone_numbers.c.number)
            ).mappings()
            return [NumberRecord(**row) for row in rows]

    @threaded
    def number_ids(self, tenant_id: UUID, numbers: Sequence[str]) -> dict[str, UUID]:
        """The ids of the tenant's numbers (e.g. a campaign's ``from_numbers``); unknown ones are absent."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(phone_numbers.c.number, phone_numbers.c.id).where(
                    phone_numbers.c.tenant_id == tenant_id, phone_numbers.c.number.in_(list(numbers))
                )
            )
            return {row.number: row.id for row in rows}

    @threaded
    def add_dnc(self, tenant_id: UUID, phone: str, reason: str = "") -> int:
        """Put ``phone`` on the tenant's do-not-call list; returns how many waiting prospects it stopped.

        Pending, held and in-flight prospects with that phone, in every campaign of the tenant, become
        ``dnc``: a call already up goes on, but finish_attempt leaves the ``dnc`` state alone.
        """
        with self._engine.begin() as conn:
            conn.execute(
                insert_ignoring_duplicates(conn, dnc_entries).values(
                    id=uuid4(), tenant_id=tenant_id, phone=phone, reason=reason, created_at=utcnow()
                )
            )
            moved = conn.execute(
                sa.update(prospects)
                .where(
                    prospects.c.tenant_id == tenant_id,
                    prospects.c.phone == phone,
                    prospects.c.state.in_(_STOPPABLE),
                )
                .values(state=ProspectState.DNC.value, updated_at=utcnow())
            )
            return moved.rowcount

    async def opt_out(self, tenant_id: UUID, phone: str, reason: str = "opted out during a call") -> int:
        """The callee asked not to be called again (voice-worker event or DTMF): ``add_dnc`` with a reason.

        Every later attempt to the number stops at once; returns how many waiting prospects it stopped.
        """
        return await self.add_dnc(tenant_id, phone, reason)
