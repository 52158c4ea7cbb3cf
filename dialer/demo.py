"""`dialer demo`: the whole product on the embedded default against a scripted loopback carrier."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path
from uuid import UUID

from rich.console import Console
from rich.live import Live

from config.settings import Settings
from dialer.allocation import did_resource
from dialer.app import Node, build_node, run_node
from dialer.demo_board import Board, Snapshot
from dialer.demo_carrier import (
    DID_NUMBERS,
    HUMAN_NUMBER,
    Carrier,
    DemoProspect,
    PjsuaCarrier,
    SippCarrier,
    demo_prospects,
    free_port,
)
from dialer.demo_report import render_summary, summarize
from dialer.domain import WEEKDAYS, CampaignStatus
from dialer.regions import callee_profile
from dialer.storage import CampaignSpec, TrunkSpec
from dialer.window import window_open
from sip.reference_worker import ReferenceWorker

DEADLINE_SECONDS = 110.0  # give up before the promised two minutes, leaving time to hang up
LINES_PER_DID = 2
# Every call may be handed to a human, whose bridged leg needs a call slot in the call's own worker
# process: with the PyPI pjsua2 (4 slots a process) each worker keeps 2 for human legs and takes 2
# calls, and 3 workers carry the 3 DIDs' 6 lines.
SIP_WORKERS = 3
TRANSFER_LINES = 2
CALL_TIMEOUT_SECONDS = 4  # ring-outs are cancelled after this: keeps no-answer retries quick
RETRY_DELAY_SECONDS = 3
INSTALL_SIPP = "install SIPp with `apt-get install sip-tester`, or let pjsua2 play the carrier"


@dataclass
class Seeded:
    """The demo tenant's ids."""

    tenant: UUID
    campaign: UUID
    dids: list[tuple[UUID, str, int]]  # id, label, cap


def demo_settings(settings: Settings, data_dir: Path) -> Settings:
    """The embedded default on loopback: a fresh SQLite file, in-process coordination, free ports."""
    database = data_dir / "demo.db"
    for leftover in data_dir.glob("demo.db*"):  # a fresh database per run (the -wal/-shm files too)
        leftover.unlink()
    rtp_span = 40
    return settings.model_copy(
        update={
            "database_url": f"sqlite:///{database}",
            "redis_url": None,
            "http_host": "127.0.0.1",
            "http_port": free_port(),
            "sip_host": "127.0.0.1",
            "sip_port": free_port(SIP_WORKERS),
            "sip_workers": SIP_WORKERS,
            "sip_transfer_lines": TRANSFER_LINES,
            "sip_rtp_port": free_port(SIP_WORKERS * rtp_span),
            "sip_rtp_ports_per_worker": rtp_span,
            "dispatch_tick_seconds": 0.5,
        }
    )


async def seed(node: Node, carrier_port: int, worker_url: str, people: list[DemoProspect]) -> Seeded:
    """Tenant, trunk to the carrier, agent on the reference worker, DIDs and a draft campaign."""
    store = node.store
    tenant = await store.create_tenant("Demo Clinic", default_region="GB")
    trunk = await store.create_trunk(
        tenant,
        TrunkSpec(
            name="loopback-carrier",
            host="127.0.0.1",
            port=carrier_port,
            max_concurrent_calls=SIP_WORKERS * 4,
            max_cps=10,
        ),
    )
    agent = await store.create_agent(tenant, "Reference voice worker", worker_url)
    dids = []
    for i, number in enumerate(DID_NUMBERS, 1):
        label = f"London {i}"
        did = await store.import_number(
            tenant,
            number,
            trunk,
            country="GB",
            agent_id=agent,
            label=label,
            max_concurrent_calls=LINES_PER_DID,
        )
        dids.append((did, label, LINES_PER_DID))
    campaign = await store.create_campaign(
        tenant,
        CampaignSpec(
            name="Spring check-ups (demo)",
            agent_id=agent,
            timezone="Europe/London",  # the UK has no legal calling-hours rule: open whenever run
            call_hours_start=clock_time(0),
            call_hours_end=clock_time(0),
            call_days=WEEKDAYS,
            max_concurrent_calls=len(dids) * LINES_PER_DID,
            call_timeout_seconds=CALL_TIMEOUT_SECONDS,
            retry_delay_failed_seconds=RETRY_DELAY_SECONDS,
            max_retries_failed=1,
            retry_delay_busy_seconds=RETRY_DELAY_SECONDS,
            max_retries_busy=2,
            retry_delay_no_answer_seconds=RETRY_DELAY_SECONDS,
            max_retries_no_answer=2,
        ),
    )
    await store.allocate_dids(campaign, [did for did, _, _ in dids])
    await store.add_prospects(campaign, [(p.name, p.phone, {"script": p.script.label}) for p in people])
    return Seeded(tenant, campaign, dids)


async def refresh(node: Node, board: Board, seeded: Seeded, sample_phone: str) -> Snapshot:
    """Read what the board polls: campaign state, prospects, DID lines, the calling window."""
    store = node.store
    record = await store.get_campaign(seeded.campaign)
    plan = await store.campaign_plan(seeded.campaign)
    pending, _ = await store.list_prospects(seeded.campaign, state="pending", limit=1000)
    lines = [
        (label, await node.coordinator.in_use(did_resource(did)), cap) for did, label, cap in seeded.dids
    ]
    is_open = None
    if plan is not None:
        rules = node.runtime.dispatcher.rules
        is_open = window_open(callee_profile(sample_phone), plan.window, rules, datetime.now(UTC))
    board.snapshot = Snapshot(
        campaign_status=record.status.value if record is not None else "?",
        prospects=await store.campaign_counts(seeded.campaign),
        retry_scheduled=sum(1 for p in pending if p.total_attempts > 0),
        lines=lines,
        window_open=is_open,
        window_text="(all day, every day, Europe/London; no UK hours rule)",
    )
    return board.snapshot


def finished(snap: Snapshot) -> bool:
    """The campaign completed and every prospect is in a terminal state."""
    live = sum(snap.prospects.get(state, 0) for state in ("pending", "dialing", "held"))
    return snap.campaign_status == CampaignStatus.COMPLETED.value and live == 0


async def watch(
    node: Node,
    board: Board,
    seeded: Seeded,
    sample: str,
    serving: asyncio.Task[int],
    console: Console,
    deadline: float,
) -> str | None:
    """Draw the board until the campaign is done; None when it is, else why it stopped."""
    live = Live(board.render(), console=console, auto_refresh=False) if console.is_terminal else None
    last_line = 0.0
    with live or contextlib.nullcontext():
        for _ in range(int(DEADLINE_SECONDS * 4) + 1):  # ~4 frames a second, bounded
            if serving.done():
                return "the dialer stopped (interrupted)"
            snap = await refresh(node, board, seeded, sample)
            if live is not None:
                live.update(board.render(), refresh=True)
            elif time.monotonic() - last_line >= 3 or finished(snap):
                console.print(board.line(), highlight=False, soft_wrap=True)
                last_line = time.monotonic()
            if finished(snap):
                return None
            if time.monotonic() > deadline:
                return f"the campaign did not finish within {DEADLINE_SECONDS:.0f} s"
            await asyncio.sleep(0.25)
    return f"the campaign did not finish within {DEADLINE_SECONDS:.0f} s"


def choose_carrier(kind: str, data_dir: Path, people: list[DemoProspect]) -> Carrier | None:
    """SIPp for ``sipp``, pjsua2 for ``pjsua2``; ``auto``: SIPp when on PATH, else pjsua2. None: no SIPp."""
    sipp = shutil.which("sipp") if kind in ("auto", "sipp") else None
    if sipp is not None:
        return SippCarrier(sipp, data_dir, people)
    return None if kind == "sipp" else PjsuaCarrier(data_dir, people)


def run_demo(
    settings: Settings, data_dir: Path, prospects: int, keep_running: bool, carrier: str = "auto"
) -> int:
    """Run the demo; returns the exit code (0: every prospect reached a terminal state in time)."""
    console = Console()
    people = demo_prospects(prospects)
    far_end = choose_carrier(carrier, data_dir, people)
    if far_end is None:
        console.print(f"error: `sipp` not found: {INSTALL_SIPP}", highlight=False, soft_wrap=True)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(settings, data_dir)
    deadline = time.monotonic() + DEADLINE_SECONDS
    return asyncio.run(_demo(settings, far_end, console, keep_running, deadline))


async def _demo(
    settings: Settings, carrier: Carrier, console: Console, keep_running: bool, deadline: float
) -> int:
    people = carrier.prospects
    data_dir = carrier.workdir
    node = build_node(settings)
    worker = ReferenceWorker(greeting_seconds=0.5, transfer_to=HUMAN_NUMBER)  # DTMF 0: to the human
    serving: asyncio.Task[int] | None = None
    try:
        seeded = await seed(node, carrier.start(), await worker.start(), people)
        labels = {number: f"London {i}" for i, number in enumerate(DID_NUMBERS, 1)}
        board = Board(labels, len(people))
        detach = node.runtime.add_observer(board, board.on_event)
        ready = asyncio.Event()
        serving = asyncio.create_task(run_node(node, ready=ready), name="dialer")
        waiting = asyncio.create_task(ready.wait())
        start_within = min(30.0, deadline - time.monotonic())
        await asyncio.wait({serving, waiting}, timeout=start_within, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not ready.is_set():
            console.print("error: the dialer did not start (see the log above)", highlight=False)
            return 1
        console.print(
            f"dialer demo: {len(people)} prospects, {len(seeded.dids)} DIDs x {LINES_PER_DID} lines, "
            f"{node.runtime.gateway.capacity()} SIP lines in {SIP_WORKERS} workers "
            f"(+{TRANSFER_LINES} each for human legs), {carrier.name} as the carrier",
            highlight=False,
            soft_wrap=True,
        )
        await node.store.set_campaign_status(seeded.campaign, CampaignStatus.ACTIVE)
        node.runtime.campaigns_changed()
        failure = await watch(node, board, seeded, people[0].phone, serving, console, deadline)
        if serving.done():
            console.print(f"stopped: {failure}", highlight=False)
            return 130
        detach()  # the board stops here; with --keep-running the API's calls go on unwatched
        summary = summarize(
            await node.store.list_attempts(seeded.campaign), await node.store.campaign_counts(seeded.campaign)
        )
        console.print(render_summary(summary, board.elapsed()))
        if failure is not None:
            console.print(f"error: {failure}; see {data_dir} for the database", highlight=False)
            return 1
        if not carrier.running():
            console.print(f"error: the {carrier.name} carrier exited during the demo", highlight=False)
            return 1
        if keep_running:
            _key_id, key = await node.store.create_api_key(seeded.tenant)
            console.print(
                f"API docs: {node.base_url}/docs\nmetrics:  {node.base_url}/metrics\n"
                f"API key of the demo tenant: {key}\nCtrl-C to stop.",
                highlight=False,
                soft_wrap=True,
            )
            return await serving
        return 0
    finally:
        if serving is not None and not serving.done():
            node.server.should_exit = True
            await serving
        elif serving is None:
            node.store.dispose()
        carrier.stop()
        await worker.stop()
