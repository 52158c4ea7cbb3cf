"""A PostgreSQL outage while calls are up: their real outcomes are written once it is back, nothing is
dialled while it is down, and dialing resumes by itself.

The database is a private cluster (initdb on a free port, stopped with ``-m immediate`` as a crash
would), never the machine's shared server. The carrier is SIPp answering every call and hanging up
after HOLD_MS, so calls end while the database is down.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time as clock_time
from pathlib import Path

import pytest

from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.domain import CampaignStatus
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import CampaignSpec, SqlStore, TrunkSpec
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import free_port
from tests.system_tools import require

pytestmark = pytest.mark.timeout(120)

HOLD_MS = 3000  # the carrier keeps each call up this long, then sends BYE
SCENARIO = Path(__file__).parent / "hold_then_bye.xml"
DID = "+442079460100"
CALLEES = [f"+44207946020{i}" for i in range(6)]
EVERY_DAY = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        pytest.fail(f"{name} not found (apt-get install postgresql)")
    return str(found)


@dataclass
class Cluster:
    """A PostgreSQL server of this test's own, which it may stop and start."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        # initdb and the server refuse to run as root: as root, run them as the postgres user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.data / "log"),
            "-w",
            "start",
        )

    def crash(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: its folders are root-only, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    pg = Cluster(data, free_port())
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        subprocess.run(
            [*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []), _pg_bin("pg_ctl"), "-D",
             str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def carrier() -> Iterator[int]:
    sipp = require("sipp", "sip-tester")
    port = free_port()
    args = [sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port(4))]
    args += ["-d", str(HOLD_MS), "-m", "100", "-nostdin"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.1)  # let it bind
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=5)


async def eventually(probe, within: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if result := await probe():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within} s: {what}")


async def test_calls_that_end_during_an_outage_keep_their_real_outcome(
    cluster: Cluster, carrier: int, tmp_path: Path
) -> None:
    store = SqlStore(cluster.url)
    store.migrate()
    settings = Settings(
        sip_port=free_port(),
        sip_rtp_port=free_port(40),
        sip_rtp_ports_per_worker=40,
        dispatch_tick_seconds=0.2,
        journal_file=tmp_path / "journal.jsonl",
    )
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="outage-node")
    worker = ReferenceWorker(greeting_seconds=0.2)
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    trunk = await store.create_trunk(tenant, TrunkSpec(name="t", host="127.0.0.1", port=carrier, max_cps=100))
    did = await store.import_number(tenant, DID, trunk, country="GB", max_concurrent_calls=3)
    campaign = await store.create_campaign(
        tenant,
        CampaignSpec(
            name="Outage",
            agent_id=agent,
            timezone="Europe/London",
            call_days=EVERY_DAY,
            call_hours_start=clock_time(0),
            call_hours_end=clock_time(0),
            max_concurrent_calls=3,
        ),
        status=CampaignStatus.ACTIVE,
    )
    await store.allocate_dids(campaign, [did])
    await store.add_prospects(campaign, [(f"P{i}", phone, {}) for i, phone in enumerate(CALLEES)])
    await runtime.start()
    try:
        runtime.campaigns_changed()

        async def three_live() -> bool:
            calls, _ = await store.list_calls(tenant, status="in-progress")
            return len(calls) == 3

        await eventually(three_live, 15, "three calls answered")
        cluster.crash()

        # The carrier hangs the three calls up while the database is down.
        await eventually(lambda: _true(not runtime.gateway.live_attempts()), 15, "the calls ended")
        assert runtime.journal.backlog >= 3, "their ends wait in the journal"
        await asyncio.sleep(1.0)  # a second more with three due prospects and free lines
        assert runtime.dispatcher.stats.placed == 3, "nothing is dialled while storage is down"

        cluster.start()
        back = time.monotonic()
        await eventually(lambda: _true(runtime.dispatcher.stats.placed > 3), 15, "dialing resumed")
        resumed_after = time.monotonic() - back
        assert runtime.journal.backlog == 0 and runtime.journal.outages == 1

        async def completed() -> bool:
            record = await store.get_campaign(campaign)
            return record is not None and record.status is CampaignStatus.COMPLETED

        await eventually(completed, 30, "the campaign completed")
        attempts = await store.list_attempts(campaign)
        assert len(attempts) == 6, "each prospect dialled once"
        assert {(a.outcome, a.reason) for a in attempts} == {("answered", "Normal call clearing")}
        assert all(a.created_at <= a.answered_at <= a.ended_at for a in attempts)  # type: ignore[operator]
        print(f"dialing resumed {resumed_after:.2f} s after the database came back")
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


async def _true(value: bool) -> bool:
    return value
