"""Media bridge: N concurrent calls streamed to the reference voice worker, lateness vs a loopback baseline.

    python bench/media.py [--calls 4] [--seconds 5]

A far gateway answers N calls from a near gateway whose agent streams to a ``ReferenceWorker``
(greeting off, echo off). For every ``media`` frame the worker receives it notes how late it came
against the ideal 20 ms schedule of its stream (``arrival - first - 20 ms x (chunk - 1)``, minus the
stream's smallest value so a constant offset does not count). The baseline, in the same run and the
same worker, is N plain asyncio WebSocket clients sending 20 ms frames on a loop timer. Printed:
p50/p99 lateness of both and their ratio, and frames lost (chunks the worker never saw).
Targets: <= 20 ms p99 added, 0 lost frames. Bounded: fixed duration, deadlines on every wait.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from dialer.ports import CallRequest  # noqa: E402
from sip.events import InboundRoute  # noqa: E402
from sip.launcher import SipGateway  # noqa: E402
from sip.reference_worker import ReferenceWorker, WorkerSession  # noqa: E402
from sip.trunks import TrunkConfig  # noqa: E402

NUMBER = "+14155550199"
CALLS_PER_WORKER = 4  # the PyPI wheel's pjsua cap


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TimingWorker(ReferenceWorker):
    """Notes (arrival, chunk) of every media frame, per stream."""

    def __init__(self) -> None:
        super().__init__(greeting_seconds=0, echo=False)
        self.arrivals: dict[int, list[tuple[float, int]]] = defaultdict(list)

    async def _heard(self, session: WorkerSession, message: dict[str, Any]) -> None:
        self.arrivals[id(session)].append((time.monotonic(), int(message["media"]["chunk"])))


def lateness(arrivals: dict[int, list[tuple[float, int]]], skip: int = 25) -> tuple[list[float], int]:
    """Per-frame lateness in ms (after the first ``skip`` frames) and frames lost, over all streams."""
    late: list[float] = []
    lost = 0
    for frames in arrivals.values():
        frames = frames[skip:]
        if len(frames) < 2:
            continue
        first, chunk0 = frames[0]
        values = [(at - first) * 1000 - 20 * (chunk - chunk0) for at, chunk in frames]
        floor = min(values)
        late += [value - floor for value in values]
        lost += frames[-1][1] - chunk0 + 1 - len({chunk for _, chunk in frames})
    return late, lost


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


async def baseline(url: str, calls: int, seconds: float) -> None:
    """N loopback clients sending 20 ms mu-law frames on the asyncio clock, as the bridge does."""
    payload = base64.b64encode(bytes(160)).decode()

    async def one() -> None:
        async with connect(url, compression=None, proxy=None) as ws:
            await ws.send(json.dumps({"event": "start", "start": {}, "streamSid": "base"}))
            start = time.monotonic()
            for chunk in range(1, int(seconds * 50) + 1):
                await asyncio.sleep(max(0.0, start + chunk * 0.02 - time.monotonic()))
                media = {"chunk": str(chunk), "payload": payload}
                await ws.send(json.dumps({"event": "media", "media": media}))

    await asyncio.gather(*(one() for _ in range(calls)))


async def bridged(url: str, calls: int, seconds: float) -> None:
    workers = -(-calls // CALLS_PER_WORKER)
    agent = uuid4()

    async def route(number: str) -> InboundRoute | None:
        return InboundRoute(uuid4(), uuid4(), uuid4()) if number == NUMBER else None

    async def urls(agent_id: UUID) -> str | None:
        return url if agent_id == agent else None

    far_port, near_port = free_port(), free_port() + 100
    # Inbound calls reach only the worker on the port dialled: one trunk per far worker.
    trunks = {
        t.id: t
        for t in (TrunkConfig(id=uuid4(), host="127.0.0.1", port=far_port + i) for i in range(workers))
    }

    async def trunk(trunk_id: UUID) -> TrunkConfig | None:
        return trunks.get(trunk_id)

    far = SipGateway(trunk, route, port=far_port, workers=workers, rtp_port=30000)
    near = SipGateway(trunk, port=near_port, workers=workers, rtp_port=36000, worker_urls=urls)
    await far.start()
    await near.start()
    try:
        for n in range(calls):
            trunk_id = list(trunks)[n % workers]
            request = CallRequest(uuid4(), uuid4(), uuid4(), trunk_id, "+14155550100", NUMBER, 10, 1, agent)
            await near.place(request)
        await asyncio.sleep(seconds + 1.0)
    finally:
        await near.stop()
        await far.stop()


async def run(calls: int, seconds: float) -> None:
    results: dict[str, tuple[float, float, int, int, int]] = {}
    for name, phase in (("loopback baseline", baseline), ("gateway bridge", bridged)):
        worker = TimingWorker()
        url = await worker.start()
        try:
            await asyncio.wait_for(phase(url, calls, seconds), seconds + 60)
        finally:
            await worker.stop()
        late, lost = lateness(worker.arrivals)
        results[name] = (pct(late, 50), pct(late, 99), lost, len(worker.arrivals), len(late))
    (b50, b99, *_), (g50, g99, *_) = results["loopback baseline"], results["gateway bridge"]
    for name, (p50, p99, lost, streams, frames) in results.items():
        print(f"{name:18} streams {streams:3d} frames {frames:6d}", end=" ")
        print(f"lateness p50 {p50:6.2f} ms p99 {p99:6.2f} ms lost {lost}")
    print(f"ratio bridge/baseline: p50 {g50 / max(b50, 0.01):.1f}x  p99 {g99 / max(b99, 0.01):.1f}x")
    print(f"added p99 {g99 - b99:.2f} ms (target <= 20 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.seconds))


if __name__ == "__main__":
    main()
