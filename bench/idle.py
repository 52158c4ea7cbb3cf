"""Idle CPU of SIP worker processes (goal: <= 0.3% of a core each), per process and per thread.

    python bench/idle.py [--workers 2] [--seconds 20] [--settle 5]

Starts the gateway's SIP worker processes (our SipGateway, no call), lets them settle, then reads
utime + stime of every worker process and of each of its threads from /proc over ``--seconds``. The
reference in the same run is a bare Python interpreter sleeping for the same window (what /proc
accounting shows for a process doing nothing): it says how much of a worker's figure is measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer.demo_carrier import free_port  # noqa: E402
from sip.launcher import SipGateway  # noqa: E402
from sip.trunks import TrunkConfig  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def ticks(stat_path: str) -> int:
    with open(stat_path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def threads(pid: int) -> dict[str, int]:
    """CPU ticks so far per thread name (threads of one name added up)."""
    used: dict[str, int] = defaultdict(int)
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
            used[name] += ticks(f"/proc/{pid}/task/{task}/stat")
        except OSError:
            continue  # a thread that ended meanwhile
    return used


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])


async def measure(workers: int, seconds: float, settle: float) -> None:
    async def no_trunk(trunk_id: UUID) -> TrunkConfig | None:
        return None

    gateway = SipGateway(no_trunk, port=free_port(workers), workers=workers, rtp_port=free_port(40 * workers))
    reference = sleeper()
    try:
        await gateway.start()
        pids = [pid for pid in gateway.workers().values() if pid is not None]
        await asyncio.sleep(settle)
        before = {pid: threads(pid) for pid in pids}
        ref0, start = ticks(f"/proc/{reference.pid}/stat"), time.monotonic()
        await asyncio.sleep(seconds)
        after = {pid: threads(pid) for pid in pids}
        ref1, took = ticks(f"/proc/{reference.pid}/stat"), time.monotonic() - start
    finally:
        await gateway.stop()
        reference.kill()
        reference.wait()

    def pct(used: int) -> float:
        return used / TICKS / took * 100

    totals = []
    for pid in pids:
        used = {name: after[pid].get(name, 0) - before[pid].get(name, 0) for name in after[pid]}
        totals.append(pct(sum(used.values())))
        by_thread = ", ".join(
            f"{name} {pct(t):.2f}%" for name, t in sorted(used.items(), key=lambda i: -i[1])
        )
        print(f"worker pid {pid}: {totals[-1]:.2f}% of a core ({by_thread})")
    mean = sum(totals) / len(totals)
    print(
        f"idle CPU per worker process: {mean:.2f}% of a core over {took:.0f} s "
        f"(goal <= 0.3%: {'met' if mean <= 0.3 else 'NOT met'}); "
        f"reference, a sleeping interpreter: {pct(ref1 - ref0):.2f}%; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    print(f"idle: {args.workers} SIP worker processes; load average {os.getloadavg()[0]:.2f}")
    asyncio.run(measure(args.workers, args.seconds, args.settle))


if __name__ == "__main__":
    main()
