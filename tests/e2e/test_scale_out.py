"""Scale-out on loopback: 2 ``--role gateway`` + 2 ``--role scheduler`` + 1 ``--role api`` processes on
PostgreSQL and Redis, dialling a SIPp carrier that answers and holds every call.

Caps are tight (every DID 1, each campaign 3, the trunk 5) and two campaigns run at once, so every cap
is pushed against by two gateway processes that share nothing but Redis and the database; the trunk's
cap is above what one gateway holds (a SIP worker of the PyPI pjsua2 wheel: 4 calls), so filling it
takes both. What the
carrier saw (its message log) is the judge: concurrent INVITE dialogs per From, per campaign and in
total never exceed the caps, and no attempt is dialled twice. The scheduler leader is SIGKILLed before
a campaign's scheduled start: the standby takes the leadership and starts it. The API node places one
call and hangs it up through whichever gateway took it, and answers a clear error once no gateway runs.

Numbers are London ones: the UK has no legal calling-hours rule, so the window is open whenever CI runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from dialer.coordination import keys
from dialer.storage import SqlStore
from sip.reference_worker import ReferenceWorker
from tests.conftest import postgres_schema
from tests.e2e import sipp_trace
from tests.e2e.test_serve import cli
from tests.sip.peers import SIPP, free_port
from tests.system_tools import needs

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.redis,
    pytest.mark.postgres,
    needs("sipp", "sip-tester"),
]

SCENARIO = Path(__file__).parent / "hold_then_bye.xml"
HOLD_MS = 2500  # how long the carrier keeps each call up before it hangs up
DID_CAP, CAMPAIGN_CAP, TRUNK_CAP = 1, 3, 5
LEAD_TTL = 2.0  # scheduler leadership lease: the standby takes over at most this long after the kill
DIDS = {"A": [f"+44207946011{i}" for i in range(3)], "B": [f"+44207946012{i}" for i in range(3)]}
CALLEES = {"A": [f"+4420794602{i:02d}" for i in range(9)], "B": [f"+4420794603{i:02d}" for i in range(9)]}
SINGLE_DID, SINGLE_CALLEE = "+442079460130", "+442079460400"
EVERY_DAY = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass
class Node:
    """One ``dialer serve --role …`` process."""

    name: str
    role: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    sip_port: int | None = None


@dataclass
class Cluster:
    """The processes under test and what the test drives them with."""

    nodes: list[Node]
    store: SqlStore  # polled directly: the API's rate limits are kept for the test's actions
    trace: Path  # the carrier's message log
    carrier_port: int
    worker_url: str
    redis_url: str
    namespace: str

    def __getitem__(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)


def spawn(role: str, name: str, env: dict[str, str], tmp: Path) -> Node:
    http_port = free_port()
    own = env | {"DIALER_NODE_ID": name, "DIALER_HTTP_PORT": str(http_port)}
    sip_port = None
    if role == "gateway":
        sip_port = free_port()
        own |= {
            "DIALER_SIP_PORT": str(sip_port),
            "DIALER_SIP_RTP_PORT": str(free_port(40)),
            "DIALER_SIP_RTP_PORTS_PER_WORKER": "40",
        }
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialer.cli", "serve", "--role", role],
            env=own,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Node(name, role, proc, f"http://127.0.0.1:{http_port}", log, sip_port)


async def until(probe: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """Poll ``probe`` every 100 ms until it returns something truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    for _ in range(int(within / 0.1) + 1):
        value = await probe()
        if value or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert value, f"{what}: nothing after {within} s"
    return value


async def health(http: httpx.AsyncClient, node: Node) -> dict[str, Any] | None:
    if node.proc.poll() is not None:
        pytest.fail(f"{node.name} exited {node.proc.returncode}: {read(node.log)[-3000:]}")
    try:
        response = await http.get(f"{node.url}/health")
    except httpx.TransportError:
        return None
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 and body["status"] == "healthy" else None


async def leading_gauge(http: httpx.AsyncClient, node: Node) -> float:
    """``dialer_scheduler_leading`` as the node's /metrics shows it."""
    text = (await http.get(f"{node.url}/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name == "dialer_scheduler_leading":
            return float(family.samples[0].value)
    raise AssertionError(f"{node.name}: no dialer_scheduler_leading in /metrics")


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def start_carrier(tmp: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """SIPp answering every INVITE and holding the call HOLD_MS, logging every message."""
    assert SIPP is not None
    port, trace = free_port(), tmp / "carrier.log"
    args = [SIPP, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port(4))]
    args += ["-d", str(HOLD_MS), "-m", "1000", "-nostdin", "-trace_msg", "-message_file", str(trace)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.05)  # let it bind before anyone sends to it
    return proc, port, trace


def campaign_body(name: str, agent_id: str, group: str, *, start: bool) -> dict[str, Any]:
    return {
        "name": name,
        "agent_id": agent_id,
        "candidates": [{"name": f"{group}{i}", "phone": p} for i, p in enumerate(CALLEES[group])],
        "timezone": "Europe/London",
        "call_hours_start": "00:00:00",
        "call_hours_end": "00:00:00",
        "call_days": EVERY_DAY,
        "max_concurrent_calls": CAMPAIGN_CAP,
        "from_numbers": DIDS[group],
        "start_campaign": start,
    }


async def stop(nodes: list[Node]) -> dict[str, int]:
    """SIGTERM every live node at once and wait for each (a gateway hangs up and records its calls)."""
    live = [node for node in nodes if node.proc.poll() is None]
    for node in live:
        node.proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(asyncio.to_thread(node.proc.wait, 30) for node in live))
    return {node.name: code for node, code in zip(live, codes, strict=True)}


async def forget_namespace(redis_url: str, namespace: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        stale = [key async for key in client.scan_iter(match=f"{keys.prefix(namespace)}*")]
        if stale:
            await client.delete(*stale)
    finally:
        await client.aclose()


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def e164(user: str) -> str:
    return user if user.startswith("+") else f"+{user}"


async def test_two_gateways_and_two_schedulers_keep_every_cap_and_survive_the_leader(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    namespace = f"dialer-scale-{uuid4().hex[:10]}"
    with postgres_schema(postgres_url, "scale") as database_url:
        env = os.environ | {
            "DIALER_DATABASE_URL": database_url,
            "DIALER_REDIS_URL": redis_url,
            "DIALER_REDIS_NAMESPACE": namespace,
            "DIALER_DISPATCH_TICK_SECONDS": "0.2",
            "DIALER_SCHEDULER_INTERVAL_SECONDS": "0.25",
            "DIALER_SCHEDULER_LEAD_TTL_SECONDS": str(LEAD_TTL),
            "DIALER_GATEWAY_COMMAND_TIMEOUT_SECONDS": "3",
            "DIALER_LOG_FORMAT": "json",
        }
        tenant = cli(env, "tenants", "create", "Acme Clinic", "--region", "GB")  # migrates, once
        key = cli(env, "keys", "create", "--tenant", tenant)
        carrier, carrier_port, trace = start_carrier(tmp_path)
        worker = ReferenceWorker(greeting_seconds=0.2)
        worker_url = await worker.start()
        nodes = [
            spawn("gateway", "gw-1", env, tmp_path),
            spawn("gateway", "gw-2", env, tmp_path),
            spawn("scheduler", "sched-1", env, tmp_path),
            spawn("scheduler", "sched-2", env, tmp_path),
            spawn("api", "api-1", env, tmp_path),
        ]
        store = SqlStore(database_url)
        cluster = Cluster(nodes, store, trace, carrier_port, worker_url, redis_url, namespace)
        try:
            async with httpx.AsyncClient(headers={"X-API-Key": key}, timeout=10) as http:
                campaigns, single = await drive(http, cluster)
                codes = await stop(nodes)
                assert all(code == 0 for code in codes.values()), codes
        finally:
            for node in nodes:
                if node.proc.poll() is None:
                    node.proc.kill()
                    node.proc.wait(10)
            carrier.kill()
            carrier.wait(5)
            await worker.stop()
            await forget_namespace(redis_url, namespace)
            store.dispose()
        dialogs = sipp_trace.parse(read(trace))
        ports = {node.sip_port for node in nodes if node.sip_port}
        await check_carrier_and_records(dialogs, database_url, campaigns, ports)
        [api_call] = [d for d in dialogs if d.attempt_id == single]
        assert api_call.answered and api_call.ended_by_dialer, "the hang-up reached the gateway holding it"
        assert e164(api_call.caller) == SINGLE_DID


async def drive(http: httpx.AsyncClient, cluster: Cluster) -> tuple[list[UUID], str]:
    """Everything over HTTP; returns the two campaigns' ids and the API call's."""
    nodes, store, trace = cluster.nodes, cluster.store, cluster.trace
    api = cluster["api-1"].url
    for node in nodes:
        found = await until(lambda node=node: health(http, node), 30, f"{node.name} healthy")
        if node.role == "gateway":
            # Below the trunk's cap: one gateway alone cannot fill it, both must dial.
            assert 0 < found["components"]["sip_workers"]["capacity"] < TRUNK_CAP
        if node.role in ("gateway", "scheduler"):
            assert (await http.get(f"{node.url}/campaigns")).status_code == 404, "no public API here"

    async def leaders() -> list[str]:
        found = [await health(http, cluster[name]) for name in ("sched-1", "sched-2")]
        leading = [
            name
            for name, h in zip(("sched-1", "sched-2"), found, strict=True)
            if h and h["components"]["scheduler"]["leading"]
        ]
        return leading if len(leading) == 1 else []

    [leader] = await until(leaders, 10, "exactly one scheduler leads")
    standby = "sched-2" if leader == "sched-1" else "sched-1"
    gauges = [await leading_gauge(http, cluster[name]) for name in (leader, standby)]
    assert gauges == [1.0, 0.0], "the leader metric agrees with /health"

    # ---- directory, over the API node
    agent = await ok(await http.post(f"{api}/agents", json={"name": "Bot", "worker_url": cluster.worker_url}))
    trunk = await ok(
        await http.post(
            f"{api}/trunks",
            json={
                "name": "carrier",
                "host": "127.0.0.1",
                "port": cluster.carrier_port,
                "max_cps": 50,
                "max_concurrent_calls": TRUNK_CAP,
            },
        )
    )
    for did in [*DIDS["A"], *DIDS["B"], SINGLE_DID]:
        body = {"phone_number": did, "trunk_id": trunk["id"], "max_concurrent_calls": DID_CAP}
        await ok(await http.post(f"{api}/phone-numbers/import", json=body))

    # ---- one API call: placed by whichever gateway takes it, hung up through the one that holds it
    created = await ok(
        await http.post(
            f"{api}/calls/create",
            json={
                "agent_id": agent["id"],
                "type": "sip",
                "sip_data": {"to": SINGLE_CALLEE, "from_number": SINGLE_DID},
            },
        )
    )
    single = created["call_id"]

    async def single_answered() -> bool:
        return any(d.attempt_id == single and d.answered for d in sipp_trace.parse(read(trace)))

    await until(single_answered, 10, "the API call is answered at the carrier")
    hung_up = await ok(await http.post(f"{api}/calls/{single}/hangup"))
    assert hung_up["action"] == "hangup"

    async def single_ended() -> bool:  # polled in the database: the API's rate limits stay for the test
        call = await store.get_attempt(UUID(single))
        return call is not None and call.ended_at is not None

    await until(single_ended, 10, "the API call is recorded ended")

    # ---- campaign B starts on schedule; its scheduler leader dies first
    b = await ok(await http.post(f"{api}/campaigns", json=campaign_body("B", agent["id"], "B", start=False)))
    when = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    await ok(
        await http.post(
            f"{api}/campaigns/{b['campaign_id']}/schedule-start", json={"scheduled_start_time": when}
        )
    )
    cluster[leader].proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster[leader].proc.wait, 10)
    b_status = (await ok(await http.get(f"{api}/campaigns/{b['campaign_id']}")))["status"]
    assert b_status == "scheduled", "the start is still to come when the leader dies"
    a = await ok(await http.post(f"{api}/campaigns", json=campaign_body("A", agent["id"], "A", start=True)))

    async def standby_leads() -> bool:
        found = await health(http, cluster[standby])
        return bool(found and found["components"]["scheduler"]["leading"])

    await until(standby_leads, 15, "the standby scheduler took the leadership")
    took_over = time.monotonic() - killed_at
    assert await leading_gauge(http, cluster[standby]) == 1.0
    client = Redis.from_url(cluster.redis_url, decode_responses=True)
    try:
        assert await client.get(keys.leader(cluster.namespace, "scheduler")) == standby
    finally:
        await client.aclose()
    print(f"\nleader {leader} SIGKILLed; {standby} led {took_over:.2f} s later (lease TTL {LEAD_TTL} s)")

    async def both_completed() -> bool:
        found = [await store.get_campaign(UUID(c["campaign_id"])) for c in (a, b)]
        return all(record is not None and record.status.value == "completed" for record in found)

    await until(both_completed, 45, "both campaigns completed")

    # ---- with no gateway left, the API node answers at once with a clear error
    gateways = [node for node in nodes if node.role == "gateway"]
    assert set((await stop(gateways)).values()) == {0}
    started = time.monotonic()
    refused = await http.post(
        f"{api}/calls/create",
        json={
            "agent_id": agent["id"],
            "type": "sip",
            "sip_data": {"to": SINGLE_CALLEE, "from_number": SINGLE_DID},
        },
    )
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "UPSTREAM_SERVICE_TIMEOUT"
    assert "no SIP gateway is running" in refused.json()["error"]["message"]
    print(f"API with no gateway answered {refused.status_code} in {time.monotonic() - started:.3f} s")
    api_health = await ok(await http.get(f"{api}/health"))
    assert api_health["components"]["gateways"]["alive"] == 0
    assert (await http.get(f"{api}/ready")).status_code == 200, "an API replica stays ready without gateways"
    return [UUID(a["campaign_id"]), UUID(b["campaign_id"])], single


async def check_carrier_and_records(
    dialogs: list[sipp_trace.Dialog], database_url: str, campaigns: list[UUID], gateway_ports: set[int]
) -> None:
    campaign_of = {e164_user: group for group, dids in DIDS.items() for e164_user in dids}
    campaign_dialogs = [d for d in dialogs if e164(d.caller) in campaign_of]
    per_did = sipp_trace.peak(dialogs, key=lambda d: e164(d.caller))
    per_campaign = sipp_trace.peak(campaign_dialogs, key=lambda d: campaign_of[e164(d.caller)])
    total = sipp_trace.peak(dialogs)["all"]
    by_gateway = {port: sum(d.via_port == port for d in dialogs) for port in gateway_ports}
    per_gateway = sipp_trace.peak(dialogs, key=lambda d: str(d.via_port))
    print(f"dialogs {len(dialogs)}; peaks: per DID {per_did}, per campaign {per_campaign}, total {total}")
    print(f"INVITEs by gateway SIP port: {by_gateway}; most up at once per gateway: {per_gateway}")

    # Caps, counted at the carrier: never above, and actually reached (the test pushes against them).
    assert max(per_did.values()) == DID_CAP, per_did
    assert max(per_campaign.values()) <= CAMPAIGN_CAP, per_campaign
    assert total <= TRUNK_CAP
    assert total == TRUNK_CAP, "two campaigns of cap 3 at once must have filled the trunk's 5 lines"
    assert all(by_gateway.values()), f"both gateway processes dialled: {by_gateway}"

    # No attempt dialled twice: one dialog per attempt id, one attempt row per dialog.
    attempt_ids = [d.attempt_id for d in dialogs]
    assert None not in attempt_ids
    assert len(set(attempt_ids)) == len(attempt_ids), "an attempt id reached the carrier in two dialogs"
    store = SqlStore(database_url)
    try:
        rows = [row for campaign_id in campaigns for row in await store.list_attempts(campaign_id)]
        assert len(rows) == sum(len(c) for c in CALLEES.values()), "one attempt per prospect"
        assert len({(row.prospect_id, row.attempt_number) for row in rows}) == len(rows)
        assert {str(row.id) for row in rows} == {d.attempt_id for d in campaign_dialogs}
        assert {row.outcome.value if row.outcome else None for row in rows} == {"answered"}
        assert sorted(e164(d.caller) for d in campaign_dialogs) == sorted(row.from_number for row in rows)
        assert await store.open_attempts() == []
    finally:
        store.dispose()


def test_the_overlap_count_catches_a_cap_violation() -> None:
    """The carrier-side judge sees two overlapping dialogs from one DID (and not back-to-back ones)."""

    def invite(at: str, call: str, did: str) -> str:
        return (
            f"----------------------------------------------- 2026-01-05 10:00:{at}\n"
            "UDP message received [300] bytes :\n\n"
            f"INVITE sip:+442079460200@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9\n"
            f"From: <sip:{did}@127.0.0.1>;tag=1\nCall-ID: {call}\nCSeq: 1 INVITE\nX-Attempt-Id: {call}\n\n"
        )

    def bye(at: str, call: str) -> str:
        return (
            f"----------------------------------------------- 2026-01-05 10:00:{at}\n"
            "UDP message sent (200 bytes):\n\n"
            f"BYE sip:x@127.0.0.1:5071 SIP/2.0\nCall-ID: {call}\nCSeq: 1 BYE\n\n"
        )

    back_to_back = invite("00.000000", "c1", "+1") + bye("02.000000", "c1") + invite("02.000000", "c2", "+1")
    overlapping = back_to_back + invite("02.500000", "c3", "+1") + bye("03.000000", "c2")
    assert sipp_trace.peak(sipp_trace.parse(back_to_back), key=lambda d: d.caller) == {"+1": 1}
    dialogs = sipp_trace.parse(overlapping)
    assert [(d.call_id, d.via_port, d.attempt_id) for d in dialogs] == [
        ("c1", 5071, "c1"),
        ("c2", 5071, "c2"),
        ("c3", 5071, "c3"),
    ]
    assert sipp_trace.peak(dialogs, key=lambda d: d.caller) == {"+1": 2}
