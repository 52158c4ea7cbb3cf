"""The ``dialer`` CLI as a new user runs it: real processes on the API's database, checked over HTTP.

Each command runs as ``python -m dialer.cli`` with DIALER_DATABASE_URL pointing at the database the
API under test serves (SQLite file or PostgreSQL schema), so a key the CLI revokes must be refused by
the running API at once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from config.settings import Settings
from dialer.cli import DEMO_OWN_SETTINGS, main
from dialer.demo import demo_settings
from dialer.storage import SqlStore, TrunkSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(store_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIALER_DATABASE_URL": store_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "dialer.cli", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def dialer(store_url: str, *argv: str, code: int = 0) -> str:
    """Run the CLI in a thread (the API under test keeps serving); its stdout, after checking its exit."""
    done = await asyncio.to_thread(_run, store_url, *argv)
    assert done.returncode == code, (done.stdout, done.stderr)
    return done.stdout if code == 0 else done.stderr


def table(output: str) -> list[dict[str, str]]:
    """The rows of a CLI table (header line, then space-padded columns)."""
    header, *rows = output.splitlines()
    names = header.split()
    return [dict(zip(names, row.split(), strict=True)) for row in rows]


async def test_keys_revoked_by_id_full_key_or_prefix_are_refused(
    store_url: str, store: SqlStore, base_url: str
) -> None:
    tenant = (await dialer(store_url, "tenants", "create", "Acme", "--region", "GB")).strip()
    listed = table(await dialer(store_url, "tenants", "list"))
    assert [(t["id"], t["name"], t["region"]) for t in listed] == [(tenant, "Acme", "GB")]

    by_id, by_key, by_prefix, kept = [
        (await dialer(store_url, "keys", "create", "--tenant", tenant)).strip() for _ in range(4)
    ]
    public = (await dialer(store_url, "keys", "create", "--tenant", tenant, "--publishable")).strip()
    async with httpx.AsyncClient(base_url=base_url) as http:

        async def status(key: str) -> int:
            return (await http.get("/campaigns", headers={"X-API-Key": key})).status_code

        assert [await status(k) for k in (by_id, by_key, by_prefix, kept, public)] == [200] * 5

        output = await dialer(store_url, "keys", "list", "--tenant", tenant)
        for secret in (by_id, by_key, by_prefix, kept, public):
            assert secret not in output  # the prefix only, never the key
        keys = {k["prefix"]: k for k in table(output)}
        assert len(keys) == 5, output
        assert {k["kind"] for k in keys.values()} == {"secret", "publishable"}
        assert all(k["revoked"] == "-" for k in keys.values())
        id_of = keys[by_id[:12]]["id"]

        assert (await dialer(store_url, "keys", "revoke", id_of)).strip() == "revoked"
        assert (await dialer(store_url, "keys", "revoke", by_key)).strip() == "revoked"
        assert (await dialer(store_url, "keys", "revoke", by_prefix[:12])).strip() == "revoked"

        assert [await status(k) for k in (by_id, by_key, by_prefix)] == [401] * 3
        assert [await status(k) for k in (kept, public)] == [200, 200]
        for revoked in (by_id, by_key, by_prefix):
            assert await store.resolve_api_key(revoked) is None

    # Revoked keys stay listed, with when; revoking one again says so and fails.
    after = {k["prefix"]: k for k in table(await dialer(store_url, "keys", "list", "--tenant", tenant))}
    assert {p for p, k in after.items() if k["revoked"] != "-"} == {
        k[:12] for k in (by_id, by_key, by_prefix)
    }
    assert "no such active key" in await dialer(store_url, "keys", "revoke", by_key, code=1)
    assert "no such active key" in await dialer(store_url, "keys", "revoke", id_of, code=1)
    assert "no such active key" in await dialer(store_url, "keys", "revoke", "sk_live_nope", code=1)


async def test_listing_an_unknown_or_malformed_tenant_fails(store_url: str, store: SqlStore) -> None:
    assert "no such tenant" in await dialer(store_url, "keys", "list", "--tenant", str(UUID(int=7)), code=1)
    assert "must be a tenant id" in await dialer(store_url, "keys", "list", "--tenant", "acme", code=2)
    assert (await dialer(store_url, "tenants", "list")).split() == [
        "id",
        "name",
        "region",
        "created",
        "retention",
    ]


async def test_a_tenants_recording_retention_is_set_and_listed(store_url: str, store: SqlStore) -> None:
    tenant = (await dialer(store_url, "tenants", "create", "Acme")).strip()
    assert "kept 30 days" in await dialer(store_url, "tenants", "retention", "--tenant", tenant, "30")
    assert await store.recording_retention(UUID(tenant)) == 30
    assert table(await dialer(store_url, "tenants", "list"))[0]["retention"] == "30d"
    assert "until deleted" in await dialer(store_url, "tenants", "retention", "--tenant", tenant, "none")
    assert await store.recording_retention(UUID(tenant)) is None
    assert "0 to 36500" in await dialer(store_url, "tenants", "retention", "--tenant", tenant, "-3", code=2)
    assert "no such tenant" in await dialer(
        store_url, "tenants", "retention", "--tenant", str(UUID(int=7)), "5", code=1
    )


async def test_inbound_sources_lists_trunk_addresses_and_cidrs(store_url: str, store: SqlStore) -> None:
    tenant = await store.create_tenant("Acme")
    trunk = await store.create_trunk(
        tenant, TrunkSpec(name="carrier", host="127.0.0.1", inbound_cidrs=("203.0.113.0/28",))
    )
    await store.create_trunk(
        tenant, TrunkSpec(name="proxied", host="localhost", outbound_proxy="sip:127.0.0.3:5060")
    )
    listed = (await dialer(store_url, "inbound-sources")).split()
    assert {"127.0.0.1/32", "127.0.0.3/32", "203.0.113.0/28"} <= set(listed), listed
    assert "127.0.0.2/32" not in listed
    kamailio = (await dialer(store_url, "inbound-sources", "--kamailio")).splitlines()
    assert kamailio[0].startswith("#")
    assert f"1 127.0.0.1 32 0 {trunk}" in kamailio and f"1 203.0.113.0 28 0 {trunk}" in kamailio


def shown(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What ``dialer ARGV`` prints before exiting 0 (--help, --version), whitespace runs made one."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_version_and_help_show_defaults_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert shown(capsys, "--version") == f"dialer {metadata.version('sip-dialer')}"
    for command in (
        ["demo"],
        ["serve"],
        ["migrate"],
        ["tenants", "create"],
        ["tenants", "list"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
    ):
        text = shown(capsys, *command, "--help")
        assert "DIALER_LOG_LEVEL (default: INFO)" in text, command
        if command != ["demo"]:  # the demo makes its own SQLite file
            assert "DIALER_DATABASE_URL (default: sqlite:///./data/dialer.db)" in text, command
    serve = shown(capsys, "serve", "--help")
    assert "(default: all)" in serve and "DIALER_SIP_PORT (default: 5060)" in serve
    assert "DIALER_REDIS_URL (default: unset)" in serve
    demo = shown(capsys, "demo", "--help")
    assert "(default: 20)" in demo and "DIALER_SIP_PORT" not in demo  # the demo picks free ports itself
    assert "(default: US)" in shown(capsys, "tenants", "create", "--help")


def test_the_demo_sets_exactly_the_settings_its_help_leaves_out(tmp_path: Path) -> None:
    base = Settings()
    demo = demo_settings(base, tmp_path)
    changed = {name for name in Settings.model_fields if getattr(demo, name) != getattr(base, name)}
    assert changed <= set(DEMO_OWN_SETTINGS)
    assert {"database_url", "sip_port", "http_port"} <= changed
