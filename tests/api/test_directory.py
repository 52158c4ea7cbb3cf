"""Trunks, agents and the do-not-call list over HTTP."""

from __future__ import annotations

from uuid import UUID

import pytest

from dialer.domain import ProspectState
from dialer.storage import SqlStore
from tests.api.conftest import DID, Tenant, assert_error


async def test_trunks(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    created = await acme.client.post(
        "/trunks",
        json={
            "name": "carrier",
            "host": "localhost",  # POST /trunks resolves the host: only loopback names do here
            "transport": "tls",
            "port": 5061,
            "username": "acme",
            "password": "s3cret-pass",
            "register": True,
            "max_cps": 2.5,
            "allowed_countries": ["us", "CA"],
            "refer_supported": False,
        },
    )
    assert created.status_code == 201, created.text
    trunk = created.json()
    assert "s3cret-pass" not in created.text and trunk["has_password"] is True
    assert trunk["register"] is True and trunk["allowed_countries"] == ["US", "CA"]
    assert await store.tenant_trunk(other.id, UUID(trunk["id"])) is None
    stored = await store.tenant_trunk(acme.id, UUID(trunk["id"]))
    assert stored is not None and stored.spec.password == "s3cret-pass" and stored.spec.max_cps == 2.5

    got = await acme.client.get(f"/trunks/{trunk['id']}")
    assert got.json() == trunk
    assert [t["name"] for t in (await acme.client.get("/trunks")).json()["data"]] == ["carrier", "main"]
    assert "s3cret-pass" not in (await acme.client.get("/trunks")).text

    assert_error(
        await acme.client.post("/trunks", json={"name": "carrier", "host": "127.0.0.1"}), 409, "CONFLICT"
    )
    assert_error(
        await acme.client.post("/trunks", json={"name": "t", "host": "h", "transport": "ws"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await acme.client.post("/trunks", json={"name": "t", "host": "h", "allowed_countries": ["USA"]}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(await other.client.get(f"/trunks/{trunk['id']}"), 404, "TRUNK_NOT_FOUND")
    assert_error(await acme.client.get("/trunks/xyz"), 400, "VALIDATION_ERROR")


async def test_trunk_host_must_resolve(acme: Tenant, store: SqlStore) -> None:
    for host in ("nonexistent.invalid", "sip.carrier.invalid", "not a host"):
        error = assert_error(
            await acme.client.post("/trunks", json={"name": "typo", "host": host}),
            400,
            "TRUNK_HOST_UNRESOLVABLE",
        )
        assert host in str(error["message"])
    assert [t.spec.name for t in await store.list_trunks(acme.id)] == ["main"], "nothing stored"
    # With an outbound proxy, INVITEs go to the proxy: its host is the one that must resolve.
    proxied = await acme.client.post(
        "/trunks",
        json={
            "name": "proxied",
            "host": "carrier.internal.invalid",
            "outbound_proxy": "sip:127.0.0.1:5070;lr",
        },
    )
    assert proxied.status_code == 201, proxied.text
    assert_error(
        await acme.client.post(
            "/trunks", json={"name": "p2", "host": "127.0.0.1", "outbound_proxy": "sip:proxy.nowhere.invalid"}
        ),
        400,
        "TRUNK_HOST_UNRESOLVABLE",
    )
    for host in ("127.0.0.1", "::1", "[::1]", "localhost"):
        created = await acme.client.post("/trunks", json={"name": f"ok {host}", "host": host})
        assert created.status_code == 201, (host, created.text)

    ok = (await acme.client.post("/trunks", json={"name": "spare", "host": "localhost"})).json()["id"]
    assert_error(
        await acme.client.patch(f"/trunks/{ok}", json={"host": "nonexistent.invalid"}),
        400,
        "TRUNK_HOST_UNRESOLVABLE",
    )
    # Dropping the proxy of a trunk whose own host does not resolve is refused too.
    assert_error(
        await acme.client.patch(f"/trunks/{proxied.json()['id']}", json={"outbound_proxy": None}),
        400,
        "TRUNK_HOST_UNRESOLVABLE",
    )
    stored = await store.tenant_trunk(acme.id, UUID(ok))
    assert stored is not None and stored.spec.host == "localhost", "a refused PATCH changes nothing"
    # The stored "main" trunk (host sip.example.net, unresolvable here) may still change other fields.
    assert (await acme.client.patch(f"/trunks/{acme.trunk}", json={"max_cps": 3})).status_code == 200
    patched = await acme.client.patch(f"/trunks/{ok}", json={"host": "127.0.0.1"})
    assert patched.status_code == 200 and patched.json()["host"] == "127.0.0.1"


async def test_agents(acme: Tenant, other: Tenant) -> None:
    created = await acme.client.post(
        "/agents",
        json={"name": "Bot", "worker_url": "wss://bot.example/media", "transfer_number": "415 555 0199"},
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["transfer_number"] == "+14155550199" and agent["client_id"] == str(acme.id)
    assert (await acme.client.get(f"/agents/{agent['id']}")).json() == agent
    assert [a["name"] for a in (await acme.client.get("/agents")).json()["data"]] == ["Bot", "Receptionist"]
    assert_error(await other.client.get(f"/agents/{agent['id']}"), 404, "AGENT_NOT_FOUND")
    assert_error(await acme.client.get("/agents/42"), 400, "VALIDATION_ERROR")
    assert_error(
        await acme.client.post("/agents", json={"name": "X", "worker_url": "http://x"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await acme.client.post(
            "/agents", json={"name": "X", "worker_url": "sip:x@y", "transfer_number": "1"}
        ),
        400,
        "VALIDATION_ERROR",
    )


async def test_dnc_stops_waiting_prospects(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    body = {
        "name": "C",
        "agent_id": str(acme.agent),
        "candidates": [{"name": "A", "phone": "+14155552671"}, {"name": "B", "phone": "+14155552672"}],
        "from_numbers": [DID],
    }
    campaign = (await acme.client.post("/campaigns", json=body)).json()["campaign_id"]
    added = await acme.client.post("/dnc", json={"phone": "(415) 555-2671", "reason": "asked"})
    assert added.json() == {"success": True, "phone": "+14155552671", "stopped_prospects": 1}
    again = await acme.client.post("/dnc", json={"phone": "+14155552671"})
    assert again.json()["stopped_prospects"] == 0
    states = (await acme.client.get(f"/campaigns/{campaign}")).json()["prospects_by_state"]
    assert states[ProspectState.DNC.value] == 1 and states[ProspectState.PENDING.value] == 1

    listed = (await acme.client.get("/dnc")).json()
    assert listed["total"] == 1 and listed["data"][0]["phone"] == "+14155552671"
    assert listed["data"][0]["reason"] == "asked"
    assert (await other.client.get("/dnc")).json()["total"] == 0
    assert_error(await acme.client.post("/dnc", json={"phone": "nope"}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.get("/dnc?limit=0"), 400, "VALIDATION_ERROR")


async def test_trunk_patch_and_delete(
    acme: Tenant, other: Tenant, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    spare = (await acme.client.post("/trunks", json={"name": "spare", "host": "localhost"})).json()["id"]
    patched = await acme.client.patch(
        f"/trunks/{spare}", json={"password": "s3cret-pw", "max_cps": 5, "register": True}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["has_password"] is True and body["max_cps"] == 5 and body["register"] is True
    assert "s3cret-pw" not in patched.text and "s3cret-pw" not in caplog.text
    stored = await store.tenant_trunk(acme.id, UUID(spare))
    assert stored is not None and stored.spec.password == "s3cret-pw"
    assert_error(await acme.client.patch(f"/trunks/{spare}", json={"name": "main"}), 409, "CONFLICT")
    assert_error(await acme.client.patch(f"/trunks/{spare}", json={}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.patch(f"/trunks/{spare}", json={"port": 0}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.patch(f"/trunks/{spare}", json={"host": None}), 400, "VALIDATION_ERROR")
    assert_error(await other.client.patch(f"/trunks/{spare}", json={"max_cps": 1}), 404, "TRUNK_NOT_FOUND")
    assert_error(await other.client.delete(f"/trunks/{spare}"), 404, "TRUNK_NOT_FOUND")
    # The tenant's DIDs use "main": it stays.
    assert_error(await acme.client.delete(f"/trunks/{acme.trunk}"), 409, "CONFLICT")
    assert (await acme.client.delete(f"/trunks/{spare}")).json() == {"success": True, "id": spare}
    assert_error(await acme.client.get(f"/trunks/{spare}"), 404, "TRUNK_NOT_FOUND")
    assert_error(await acme.client.delete("/trunks/x"), 400, "VALIDATION_ERROR")


async def test_agent_patch_and_delete(acme: Tenant, other: Tenant) -> None:
    created = await acme.client.post("/agents", json={"name": "Spare", "worker_url": "wss://w.example"})
    spare = created.json()["id"]
    patched = await acme.client.patch(
        f"/agents/{spare}", json={"name": "Desk", "transfer_number": "(415) 555-0142"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Desk" and patched.json()["transfer_number"] == "+14155550142"
    cleared = await acme.client.patch(f"/agents/{spare}", json={"transfer_number": None})
    assert cleared.json()["transfer_number"] is None
    bad_url = {"worker_url": "http://w.example"}
    assert_error(await acme.client.patch(f"/agents/{spare}", json=bad_url), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.patch(f"/agents/{spare}", json={}), 400, "VALIDATION_ERROR")
    assert_error(await other.client.patch(f"/agents/{spare}", json={"name": "x"}), 404, "AGENT_NOT_FOUND")
    assert_error(await acme.public.delete(f"/agents/{spare}"), 403, "INSUFFICIENT_SCOPE")
    # The tenant's first DID routes inbound calls to its agent: that agent stays.
    assert_error(await acme.client.delete(f"/agents/{acme.agent}"), 409, "CONFLICT")
    assert (await acme.client.delete(f"/agents/{spare}")).json() == {"success": True, "id": spare}
    assert_error(await acme.client.get(f"/agents/{spare}"), 404, "AGENT_NOT_FOUND")


async def test_dnc_delete_and_opt_out(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    await acme.client.post("/dnc", json={"phone": "+14155552671"})
    assert_error(await other.client.delete("/dnc/%2B14155552671"), 404, "DNC_ENTRY_NOT_FOUND")
    removed = await acme.client.delete("/dnc/%2B14155552671")
    assert removed.json() == {"success": True, "phone": "+14155552671", "removed": True}
    assert not await store.has_dnc(acme.id, "+14155552671")
    assert_error(await acme.client.delete("/dnc/%2B14155552671"), 404, "DNC_ENTRY_NOT_FOUND")
    assert_error(await acme.client.delete("/dnc/nope"), 400, "VALIDATION_ERROR")
    assert await store.opt_out(acme.id, "+14155552672") == 0
    assert await store.has_dnc(acme.id, "+14155552672") and not await store.has_dnc(other.id, "+14155552672")


async def test_trunk_inbound_cidrs(acme: Tenant, store: SqlStore) -> None:
    """The networks a trunk's inbound INVITEs may come from: stored canonical, a bad one named."""
    created = await acme.client.post(
        "/trunks",
        json={
            "name": "edge",
            "host": "localhost",
            "inbound_cidrs": ["203.0.113.0/24", "2001:db8::1", " 10.1.2.3 "],
        },
    )
    assert created.status_code == 201, created.text
    trunk = created.json()
    assert trunk["inbound_cidrs"] == ["203.0.113.0/24", "2001:db8::1/128", "10.1.2.3/32"]
    stored = await store.tenant_trunk(acme.id, UUID(trunk["id"]))
    assert stored is not None and stored.spec.inbound_cidrs == (
        "203.0.113.0/24",
        "2001:db8::1/128",
        "10.1.2.3/32",
    )
    main = (await acme.client.get(f"/trunks/{acme.trunk}")).json()
    assert main["inbound_cidrs"] == []  # none unless given: the host's addresses only

    patched = await acme.client.patch(f"/trunks/{trunk['id']}", json={"inbound_cidrs": ["198.51.100.0/25"]})
    assert patched.status_code == 200 and patched.json()["inbound_cidrs"] == ["198.51.100.0/25"]
    for bad in (["203.0.113.0/33"], ["203.0.113.1/24"], ["example.net"], ["10.0.0.0/8", "nope"]):
        error = assert_error(
            await acme.client.post("/trunks", json={"name": "t", "host": "localhost", "inbound_cidrs": bad}),
            400,
            "VALIDATION_ERROR",
        )
        details = error["details"]
        assert isinstance(details, list) and "inbound_cidrs" in str(details[0]), details
        assert bad[-1] in str(details[0]), details  # the entry at fault is named
        error = assert_error(
            await acme.client.patch(f"/trunks/{trunk['id']}", json={"inbound_cidrs": bad}),
            400,
            "VALIDATION_ERROR",
        )
    error = assert_error(
        await acme.client.patch(f"/trunks/{trunk['id']}", json={"inbound_cidrs": None}),
        400,
        "VALIDATION_ERROR",
    )
    assert (await acme.client.get(f"/trunks/{trunk['id']}")).json()["inbound_cidrs"] == ["198.51.100.0/25"]
