"""CPU of the voice-worker streams of a SIP worker process, without SIP: the hub loop and a 20 ms clock.

    python bench/hub.py [--calls 16] [--seconds 10]

What a SIP worker's ``StreamHub`` (sip/stream.py) does per streamed call, measured apart from pjsua: a
thread stands for pjsua's clock and every 20 ms hands each session a frame heard (``feed``) and plays
one out of its ``Playout`` (echoing marks), as ``StreamPort`` does; bench/media.py's ``TimingWorker``
(this process's main loop) speaks a frame and a mark every 20 ms per stream. Reference in the same
run: plain WebSocket clients doing the same per-call work (bench/media.py's ``loopback_client``) on a
loop thread of their own. Both are the CPU time of their own threads (/proc/self/task), per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import media as mb  # noqa: E402  # bench/media.py: the timing worker and the plain client

from sip.audio import tone  # noqa: E402
from sip.playout import Playout  # noqa: E402
from sip.protocol import StreamSpec  # noqa: E402
from sip.stream import StreamHub  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_ids: list[int]) -> float:
    total = 0
    for tid in native_ids:
        with open(f"/proc/self/task/{tid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


async def started(worker: mb.TimingWorker, calls: int) -> None:
    """Until every stream has started (30 s at most)."""
    for _ in range(600):
        if worker.started >= calls:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{worker.started} of {calls} streams started in 30 s")


async def hub_run(calls: int, seconds: float) -> float:
    """% of a core per call: the hub loop thread and the clock thread."""
    worker = mb.TimingWorker(seconds + 10)
    url = await worker.start()
    hub = StreamHub(lambda request: None)
    hub.start()
    sessions = [hub.open(key, StreamSpec(url, "AC", str(uuid4())), Playout()) for key in range(calls)]
    pcm, stop = tone(440, 0.02), threading.Event()

    def clock() -> None:  # pjsua's clock thread, as StreamPort's two callbacks use it
        begin, tick = time.monotonic(), 0
        while not stop.is_set():
            tick += 1
            time.sleep(max(0.0, begin + tick * 0.02 - time.monotonic()))
            for session in sessions:
                session.feed(pcm)
                _, marks = session.playout.next_frame()
                if marks:
                    session.marks_played(marks)

    ticker = threading.Thread(target=clock, name="clock")
    ticker.start()
    try:
        await started(worker, calls)
        await asyncio.sleep(mb.WARMUP)
        ids = [hub._thread.native_id or 0, ticker.native_id or 0]  # a bench may look inside
        cpu0, start = thread_cpu(ids), time.monotonic()
        await asyncio.sleep(seconds)
        return (thread_cpu(ids) - cpu0) / calls / (time.monotonic() - start) * 100
    finally:
        stop.set()
        ticker.join()
        for session in sessions:
            session.close()
        hub.stop()
        await worker.stop()


async def clients_run(calls: int, seconds: float) -> float:
    """% of a core per call: plain WebSocket clients on a loop thread of their own."""
    worker = mb.TimingWorker(seconds + 10)
    url = await worker.start()
    span = mb.WARMUP + seconds + 2
    native: list[int] = []

    def clients() -> None:
        native.append(threading.get_native_id())
        asyncio.run(mb.loopback_clients(url, calls, span))

    thread = threading.Thread(target=clients, name="clients")
    thread.start()
    try:
        await started(worker, calls)
        await asyncio.sleep(mb.WARMUP)
        cpu0, start = thread_cpu(native), time.monotonic()
        await asyncio.sleep(seconds)
        return (thread_cpu(native) - cpu0) / calls / (time.monotonic() - start) * 100
    finally:
        await asyncio.to_thread(thread.join, span + 10)
        await worker.stop()


async def run(calls: int, seconds: float, repeat: int) -> None:
    print(f"hub: {calls} streams, {seconds:.0f} s windows; load average {os.getloadavg()[0]:.2f}")
    hubs, refs = [], []
    for _ in range(repeat):
        refs.append(await clients_run(calls, seconds))
        hubs.append(await hub_run(calls, seconds))
        print(f"  plain clients {refs[-1]:.2f}%, hub + clock {hubs[-1]:.2f}% of a core per call")
    hub, ref = sorted(hubs)[len(hubs) // 2], sorted(refs)[len(refs) // 2]
    print(
        f"median: hub + clock {hub:.2f}% vs plain WebSocket clients {ref:.2f}% of a core per call "
        f"({hub / max(ref, 0.01):.2f}x); load average {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.seconds, args.repeat))


if __name__ == "__main__":
    main()
