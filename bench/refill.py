"""Refill latency: the carrier's BYE of one campaign call -> the dialer's INVITE of the next (p99 <= 50 ms).

    python bench/refill.py [--lines 8] [--prospects 160] [--hold-ms 1000] [--store sqlite|postgres]

The whole runtime of ``dialer serve`` (our Runtime: store, dispatcher, SIP worker processes, the calls
streamed to the reference voice worker) runs one campaign with ``--prospects`` due prospects and
``--lines`` concurrent calls against SIPp (a C far end, tests/e2e/hold_then_bye.xml) that answers every
INVITE, holds it ``--hold-ms`` and hangs up. Every line is busy, so each BYE frees the line the next
INVITE takes. Read from SIPp's message log (one clock, SIPp's): for each BYE SIPp sent, the first
INVITE it received afterwards that no earlier BYE took. The reference in the same run is SIPp's own
BYE -> 200 OK round trip through the gateway (the SIP stack's share, and how loaded the box is).
Bounded: ``--budget`` seconds for the campaign.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import time as day_time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from capacity import rtp_base  # noqa: E402  # bench/capacity.py: RTP ports no other process takes

from config.settings import Settings  # noqa: E402
from dialer.coordination import MemoryCoordinator  # noqa: E402
from dialer.demo_carrier import free_port  # noqa: E402
from dialer.domain import CampaignStatus  # noqa: E402
from dialer.regions import load_rules  # noqa: E402
from dialer.runtime import Runtime  # noqa: E402
from dialer.storage import CampaignSpec, SqlStore, TrunkSpec  # noqa: E402
from tests.conftest import postgres_schema  # noqa: E402
from tests.e2e import sipp_trace  # noqa: E402  # the carrier message-log parser the scale-out test uses

SCENARIO = ROOT / "tests" / "e2e" / "hold_then_bye.xml"
EVERY_DAY = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def refills(dialogs: list[sipp_trace.Dialog]) -> list[float]:
    """Milliseconds from each carrier BYE to the first later INVITE not taken by an earlier BYE."""
    starts = sorted(d.start for d in dialogs)
    ends = sorted(d.end for d in dialogs if d.end is not None and not d.ended_by_dialer)
    gaps, next_start = [], 0
    for end in ends:
        while next_start < len(starts) and starts[next_start] <= end:
            next_start += 1
        if next_start == len(starts):
            break  # the campaign's last calls: nothing left to dial
        gaps.append((starts[next_start] - end).total_seconds() * 1000)
        next_start += 1
    return gaps


def bye_round_trips(text: str) -> list[float]:
    """Milliseconds from SIPp's BYE to the gateway's 200 OK for it, per dialog (the reference)."""
    sent: dict[str, float] = {}
    trips = []
    for stamp, body in sipp_trace._BLOCK.findall(text):
        at = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + float("0" + stamp[19:])
        message = body.split("\n\n", 1)[1].lstrip("\n") if "\n\n" in body else ""
        call_id = sipp_trace._header(message, "Call-ID")
        cseq = sipp_trace._header(message, "CSeq") or ""
        if call_id is None or not cseq.endswith("BYE"):
            continue
        if message.startswith("BYE ") and body.startswith("UDP message sent"):
            sent.setdefault(call_id, at)
        elif message.startswith("SIP/2.0 200") and call_id in sent:
            trips.append((at - sent.pop(call_id)) * 1000)
    return trips


def start_carrier(
    port: int, trace: Path, hold_ms: int, jitter_ms: int, calls: int
) -> subprocess.Popen[bytes]:
    """SIPp answering every INVITE, holding it ``hold_ms`` (+- ``jitter_ms``, uniform) and hanging up,
    logging every message."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp not found (apt-get install sip-tester)")
    scenario = trace.with_name("carrier.xml")
    pause = f'<pause distribution="uniform" min="{hold_ms - jitter_ms}" max="{hold_ms + jitter_ms}"/>'
    scenario.write_text(SCENARIO.read_text().replace("<pause/>", pause if jitter_ms else "<pause/>"))
    return subprocess.Popen(
        [sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port(4)),
         "-d", str(hold_ms), "-m", str(calls), "-nostdin", "-trace_msg", "-message_file", str(trace)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_worker() -> tuple[subprocess.Popen[bytes], str]:
    """The reference voice worker in a process of its own (as in production: not in the dialer's)."""
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "sip.reference_worker", "--port", str(port), "--greeting-seconds", "0.2"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):  # 10 s at most
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return worker, f"ws://127.0.0.1:{port}"
        time.sleep(0.1)
    worker.kill()
    raise SystemExit("the reference voice worker did not start")


async def campaign(args: argparse.Namespace, tmp: Path) -> tuple[str, float]:
    """Run the campaign to completion; returns SIPp's message log and the seconds it took."""
    trace = tmp / "carrier.log"
    carrier_port = free_port()
    carrier = start_carrier(carrier_port, trace, args.hold_ms, args.jitter_ms, args.prospects)
    cleanup = contextlib.ExitStack()
    url = f"sqlite:///{tmp / 'dialer.db'}"
    if args.database:  # a fresh PostgreSQL schema, dropped afterwards
        url = cleanup.enter_context(postgres_schema(args.database, "refill"))
    store = SqlStore(url)
    store.migrate()
    workers = -(-args.lines // 4)  # the PyPI wheel: 4 calls a worker process (a built pjsua2: more)
    settings = Settings(
        sip_port=free_port(), sip_workers=workers, sip_rtp_port=rtp_base(40 * workers),
        sip_rtp_ports_per_worker=40, journal_file=tmp / "journal",
    )  # fmt: skip
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="refill-bench")
    worker, worker_url = start_worker()
    try:
        tenant = await store.create_tenant("Bench", default_region="GB")
        agent = await store.create_agent(tenant, "Agent", worker_url)
        trunk = await store.create_trunk(
            tenant, TrunkSpec(name="sipp", host="127.0.0.1", port=carrier_port, max_cps=1000)
        )
        dids = [
            await store.import_number(
                tenant, f"+4420794601{i:02d}", trunk, country="GB", max_concurrent_calls=-(-args.lines // 4)
            )
            for i in range(4)  # their caps add up to the campaign's: every cap is full while it runs
        ]
        campaign_id = await store.create_campaign(
            tenant,
            CampaignSpec(
                name="Refill",
                agent_id=agent,
                timezone="Europe/London",
                call_days=EVERY_DAY,
                call_hours_start=day_time(0),
                call_hours_end=day_time(0),
                max_concurrent_calls=args.lines,
            ),
            status=CampaignStatus.PAUSED,
        )
        await store.allocate_dids(campaign_id, dids)
        await store.add_prospects(
            campaign_id, [(f"P{i}", f"+44207946{i:04d}", {}) for i in range(args.prospects)]
        )
        await runtime.start()
        if runtime.gateway.capacity() < args.lines:
            raise SystemExit(f"the gateway holds {runtime.gateway.capacity()} calls < --lines {args.lines}")
        began = time.monotonic()
        await store.set_campaign_status(campaign_id, CampaignStatus.ACTIVE)
        runtime.campaigns_changed()
        while time.monotonic() - began < args.budget:
            await asyncio.sleep(0.25)
            if carrier.poll() is not None:  # SIPp exits after its -m calls: the campaign's last one ended
                break
        else:
            print(f"budget of {args.budget:.0f} s spent before the campaign completed")
        took = time.monotonic() - began
    finally:
        await runtime.stop()
        worker.terminate()
        worker.wait(10)
        carrier.terminate()
        carrier.wait(10)
        store.dispose()
        cleanup.close()
    return trace.read_text(errors="replace"), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=8, help="the campaign's concurrent calls")
    parser.add_argument("--prospects", type=int, default=160)
    parser.add_argument("--hold-ms", type=int, default=1000, help="how long the carrier holds each call")
    parser.add_argument(
        "--jitter-ms", type=int, default=500, help="hold spread (uniform +-); 0: every line ends in step"
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--budget", type=float, default=300.0)
    args = parser.parse_args()
    args.database = os.environ.get("DIALER_BENCH_PG", DEFAULT_PG) if args.store == "postgres" else None
    hold = f"hold {args.hold_ms} +- {args.jitter_ms} ms"
    print(
        f"refill: {args.prospects} prospects, {args.lines} lines, {hold}, {args.store}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        text, took = asyncio.run(campaign(args, Path(tmp)))
    dialogs = sipp_trace.parse(text)
    gaps, trips = refills(dialogs), bye_round_trips(text)
    answered = sum(1 for d in dialogs if d.answered)
    print(
        f"{len(dialogs)} calls ({answered} answered) in {took:.1f} s; load average {os.getloadavg()[0]:.2f}"
    )
    if not gaps:
        raise SystemExit("no refill measured")
    p50, p99 = pct(gaps, 0.5), pct(gaps, 0.99)
    print(
        f"BYE -> next INVITE ({len(gaps)} refills): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(gaps):.1f} ms, mean {statistics.fmean(gaps):.1f} ms"
    )
    if trips:
        ratio = p50 / max(pct(trips, 0.5), 0.01)
        print(
            f"reference, BYE -> 200 OK through the gateway ({len(trips)}): p50 {pct(trips, 0.5):.1f} ms, "
            f"p99 {pct(trips, 0.99):.1f} ms; refill p50 is {ratio:.0f}x it"
        )
    print(f"goal p99 <= 50 ms: {'met' if pct(gaps, 0.99) <= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
