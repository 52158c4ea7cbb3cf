"""Media bridge: N calls streamed to a voice worker, both directions and CPU, vs a loopback baseline.

    python bench/media.py [--calls 8] [--seconds 5]            one concurrency
    python bench/media.py --sweep 4,8,12,16,24 [--budget 600]  up to the first that breaks a target
    [--repeat 3]  runs per concurrency, interleaved; medians shown (a shared machine is noisy)

Bridge run: a far gateway (pjsua2 worker processes, 4 calls each: the PyPI wheel's cap) answers N
calls from a near gateway whose agent streams to ``TimingWorker`` in this process. Baseline run, same
run and same worker: a child process of N plain WebSocket clients doing what the bridge does per call
without SIP or RTP (a 20 ms tick sends one mu-law frame and plays one frame of the worker's audio out
of a ``sip.playout.Playout``, echoing its marks).

Measured over the same window in both runs, after a warm-up:
- gateway→worker: lateness of each ``media`` frame against its stream's ideal 20 ms schedule
  (``arrival - first - 20 ms x (chunk - first chunk)``, minus the stream's smallest value); lost =
  chunks the worker never saw.
- worker→far end: the worker speaks a 20 ms frame and a mark every 20 ms, 3 frames ahead; the gateway
  echoes a mark once the audio before it has been handed to the call (its play-out into pjsua's
  conference bridge), so ``echo - sent`` (minus the stream's smallest) is the lateness of the worker's
  audio at play-out, return path included (it is in the baseline too); lost = marks never echoed.
  Play-out never drops audio, so each underrun (a frame later than the cushion) delays the rest of
  the stream by a frame: that shows here as lateness.
- CPU per streamed call: CPU time of the near gateway's SIP worker processes (baseline: the client
  process) / calls / seconds, as a % of one core.
Targets: <= 20 ms p99 added (bridge p99 - baseline p99) in each direction, 0 lost frames. Everything is
bounded: fixed durations, a deadline on every wait, ``--budget`` seconds for a whole sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import WebSocketException  # noqa: E402

from dialer.demo_carrier import free_port  # noqa: E402
from dialer.ports import CallRequest  # noqa: E402
from sip.audio import FRAME_SAMPLES, tone, ulaw_decode, ulaw_encode  # noqa: E402
from sip.events import InboundRoute  # noqa: E402
from sip.launcher import SipGateway  # noqa: E402
from sip.playout import Playout  # noqa: E402
from sip.reference_worker import ReferenceWorker, WorkerSession  # noqa: E402
from sip.trunks import TrunkConfig  # noqa: E402

NUMBER = "+14155550199"
CALLS_PER_WORKER = 4  # the PyPI wheel's pjsua cap
WARMUP = 1.5  # seconds after every stream started before the window opens
TAIL = 0.5  # marks sent this close to the window's end may still be echoed after it: not judged
ADDED_P99_MS = 20.0
CUSHION = 3  # frames the worker speaks ahead, as a TTS does: play-out is not starved by jitter under 60 ms
TICKS = os.sysconf("SC_CLK_TCK")
SPEECH = base64.b64encode(ulaw_encode(tone(1000, 0.02))).decode()  # one 20 ms frame of 1 kHz


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (from /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


# ---- the voice worker: hears frames, speaks frames and marks ---------------------------------------


class TimingWorker(ReferenceWorker):
    """Notes when each media frame arrives, and speaks a frame + mark every 20 ms per stream."""

    def __init__(self, speak_seconds: float) -> None:
        super().__init__(greeting_seconds=0, echo=False)
        self.max_frames = int(speak_seconds * 50)
        self.arrivals: dict[int, list[tuple[float, int]]] = defaultdict(list)  # (monotonic, chunk)
        self.sent: dict[int, dict[str, float]] = defaultdict(dict)  # mark name -> when its frame went
        self.echoed: dict[int, dict[str, float]] = defaultdict(dict)  # mark name -> when it came back
        self.started = 0
        self._speakers: set[asyncio.Task[None]] = set()

    async def _handle(self, session: WorkerSession, raw: str | bytes) -> None:
        message = json.loads(raw)
        event = message.get("event")
        now = time.monotonic()
        if event == "media":
            self.arrivals[id(session)].append((now, int(message["media"]["chunk"])))
        elif event == "mark":
            self.echoed[id(session)][message["mark"]["name"]] = now
        elif event == "start":
            session.start = message["start"]
            session.stream_sid = str(message.get("streamSid", ""))
            self.started += 1
            task = asyncio.create_task(self._speak(session))
            self._speakers.add(task)
            task.add_done_callback(self._speakers.discard)

    async def _speak(self, session: WorkerSession) -> None:
        sent = self.sent[id(session)]
        media = json.dumps({"event": "media", "streamSid": session.stream_sid, "media": {"payload": SPEECH}})
        begin = time.monotonic() - CUSHION * 0.02
        with contextlib.suppress(WebSocketException):
            for n in range(1, self.max_frames + 1):
                await asyncio.sleep(max(0.0, begin + n * 0.02 - time.monotonic()))
                if session.closed:
                    return
                sent[str(n)] = time.monotonic()
                await session.ws.send(media)
                mark = {"event": "mark", "streamSid": session.stream_sid, "mark": {"name": str(n)}}
                await session.ws.send(json.dumps(mark))

    async def stop(self) -> None:
        for task in self._speakers:
            task.cancel()
        await super().stop()


@dataclass
class Direction:
    p50: float
    p99: float
    lost: int
    frames: int


@dataclass
class Run:
    streams: int
    heard: Direction  # gateway → worker
    spoken: Direction  # worker → far end (play-out)
    cpu_per_call: float  # % of one core


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


def heard(worker: TimingWorker, start: float, end: float) -> Direction:
    """Gateway → worker lateness and loss over [start, end)."""
    late: list[float] = []
    lost = 0
    for frames in worker.arrivals.values():
        frames = [(at, chunk) for at, chunk in frames if start <= at < end]
        if len(frames) < 2:
            continue
        first, chunk0 = frames[0]
        values = [(at - first) * 1000 - 20 * (chunk - chunk0) for at, chunk in frames]
        floor = min(values)
        late += [value - floor for value in values]
        lost += frames[-1][1] - chunk0 + 1 - len({chunk for _, chunk in frames})
    return Direction(pct(late, 50), pct(late, 99), lost, len(late))


def spoken(worker: TimingWorker, start: float, end: float) -> Direction:
    """Worker → far end (play-out) lateness and loss of the frames sent over [start, end - TAIL)."""
    late: list[float] = []
    lost = 0
    for key, sent in worker.sent.items():
        echoed = worker.echoed.get(key, {})
        judged = {name: at for name, at in sent.items() if start <= at < end - TAIL}
        delays = [(echoed[name] - at) * 1000 for name, at in judged.items() if name in echoed]
        lost += len(judged) - len(delays)
        if delays:
            floor = min(delays)
            late += [delay - floor for delay in delays]
    return Direction(pct(late, 50), pct(late, 99), lost, len(late))


async def measured(worker: TimingWorker, calls: int, pids: list[int], seconds: float) -> Run:
    """Wait (bounded) for every stream to start, warm up, then measure one window."""
    for _ in range(600):  # 30 s at most
        if worker.started >= calls:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"only {worker.started} of {calls} streams started")
    await asyncio.sleep(WARMUP)
    start, cpu0 = time.monotonic(), cpu_seconds(pids)
    await asyncio.sleep(seconds)
    end, cpu1 = time.monotonic(), cpu_seconds(pids)
    await asyncio.sleep(TAIL)  # the last judged marks come back
    cpu = (cpu1 - cpu0) / calls / (end - start) * 100
    return Run(worker.started, heard(worker, start, end), spoken(worker, start, end), cpu)


# ---- baseline: plain WebSocket clients in a child process --------------------------------------------


async def loopback_client(url: str, seconds: float) -> None:
    """One call's worth of bridge work without SIP: a 20 ms tick sends a frame and plays one out."""
    playout = Playout()
    pcm = tone(440, 0.02)
    async with connect(url, compression=None, proxy=None) as ws:
        sid = f"MZ{uuid4().hex}"
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "streamSid": sid, "start": {"streamSid": sid}}))

        async def listen() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message.get("event") == "media":
                    playout.add_audio(ulaw_decode(base64.b64decode(message["media"]["payload"])))
                elif message.get("event") == "mark":
                    playout.add_mark(message["mark"]["name"])

        listener = asyncio.create_task(listen())
        begin = time.monotonic()
        for chunk in range(1, int(seconds * 50) + 1):
            await asyncio.sleep(max(0.0, begin + chunk * 0.02 - time.monotonic()))
            payload = base64.b64encode(ulaw_encode(pcm)).decode()
            media = {"track": "inbound", "chunk": str(chunk), "timestamp": str((chunk - 1) * 20)}
            await ws.send(
                json.dumps({"event": "media", "streamSid": sid, "media": media | {"payload": payload}})
            )
            _, marks = playout.next_frame(2 * FRAME_SAMPLES)
            for name in marks:
                await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": name}}))
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketException):
            await listener


async def loopback_clients(url: str, calls: int, seconds: float) -> None:
    await asyncio.gather(*(loopback_client(url, seconds) for _ in range(calls)))


async def baseline(calls: int, seconds: float) -> Run:
    worker = TimingWorker(seconds + WARMUP + 10)
    url = await worker.start()
    span = WARMUP + seconds + TAIL + 2
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--loopback-client", url, str(calls), str(span)
    )
    try:
        return await measured(worker, calls, [child.pid], seconds)
    finally:
        try:
            await asyncio.wait_for(child.wait(), span + 10)
        except TimeoutError:
            child.kill()
            await child.wait()
        await worker.stop()


# ---- the bridge: two gateways over SIP on loopback --------------------------------------------------


async def bridged(calls: int, seconds: float) -> Run:
    workers = -(-calls // CALLS_PER_WORKER)
    worker = TimingWorker(seconds + WARMUP + 30)
    url = await worker.start()
    agent = uuid4()

    async def route(number: str) -> InboundRoute | None:
        return InboundRoute(uuid4(), uuid4(), uuid4()) if number == NUMBER else None

    async def urls(agent_id: UUID) -> str | None:
        return url if agent_id == agent else None

    # One span each for SIP and RTP, split between the two gateways: two spans probed before either
    # gateway binds could overlap.
    far_port = free_port(2 * workers)
    near_port = far_port + workers
    far_rtp = free_port(80 * workers)
    # Inbound calls reach only the worker on the port dialled: one trunk per far worker.
    trunks = [TrunkConfig(id=uuid4(), host="127.0.0.1", port=far_port + i) for i in range(workers)]
    by_id = {t.id: t for t in trunks}

    async def trunk(trunk_id: UUID) -> TrunkConfig | None:
        return by_id.get(trunk_id)

    rtp = {"rtp_ports_per_worker": 40}
    far = SipGateway(trunk, route, port=far_port, workers=workers, rtp_port=far_rtp, **rtp)
    near_rtp = far_rtp + 40 * workers
    near = SipGateway(trunk, port=near_port, workers=workers, rtp_port=near_rtp, worker_urls=urls, **rtp)
    await far.start()
    await near.start()
    try:
        for n in range(calls):
            request = CallRequest(
                uuid4(), uuid4(), uuid4(), trunks[n % workers].id, "+14155550100", NUMBER, 10, 1, agent
            )
            await near.place(request)
        pids = [pid for pid in near.workers().values() if pid is not None]
        return await measured(worker, calls, pids, seconds)
    finally:
        await near.stop()
        await far.stop()
        await worker.stop()


# ---- report -------------------------------------------------------------------------------------


def added(bridge: Direction, base: Direction) -> float:
    return bridge.p99 - base.p99


def breaks(bridge: Run, base: Run) -> list[str]:
    """Which targets the bridge misses at this concurrency (empty: both hold)."""
    why = []
    for name, b, r in (
        ("gateway→worker", bridge.heard, base.heard),
        ("worker→far", bridge.spoken, base.spoken),
    ):
        if added(b, r) > ADDED_P99_MS:
            why.append(f"{name} p99 +{added(b, r):.1f} ms")
        if b.lost:
            why.append(f"{name} {b.lost} frames lost")
    if bridge.streams < base.streams:
        why.append("calls not all streamed")
    return why


def show(calls: int, bridge: Run, base: Run) -> None:
    print(f"\n{calls} calls ({-(-calls // CALLS_PER_WORKER)} SIP workers per gateway)")
    print(f"  {'':22}{'p50 ms':>9}{'p99 ms':>9}{'lost':>6}{'frames':>8}")
    for label, run in (("bridge", bridge), ("loopback baseline", base)):
        for direction, d in (("gateway→worker", run.heard), ("worker→far end", run.spoken)):
            name = f"{label[:8]} {direction}"
            print(f"  {name:22}{d.p50:9.2f}{d.p99:9.2f}{d.lost:6d}{d.frames:8d}")
    heard_added, spoken_added = added(bridge.heard, base.heard), added(bridge.spoken, base.spoken)
    print(f"  added p99: gateway→worker {heard_added:+.2f} ms, worker→far end {spoken_added:+.2f} ms", end="")
    print(f" (target <= {ADDED_P99_MS:.0f})")
    ratio = bridge.cpu_per_call / max(base.cpu_per_call, 0.01)
    print(
        f"  CPU per streamed call: bridge {bridge.cpu_per_call:.2f}% of a core (SIP worker processes), "
        f"baseline {base.cpu_per_call:.2f}% ({ratio:.1f}x)"
    )


def median(runs: list[Run]) -> Run:
    """Per field, the median of repeated runs (lost frames: the worst), to damp a noisy machine."""

    def direction(pick: str) -> Direction:
        ds = [getattr(r, pick) for r in runs]
        return Direction(
            statistics.median(d.p50 for d in ds),
            statistics.median(d.p99 for d in ds),
            max(d.lost for d in ds),
            min(d.frames for d in ds),
        )

    cpu = statistics.median(r.cpu_per_call for r in runs)
    return Run(min(r.streams for r in runs), direction("heard"), direction("spoken"), cpu)


async def run(sweep: list[int], seconds: float, budget: float, repeat: int) -> None:
    began = time.monotonic()
    held: int | None = None
    broke: tuple[int, list[str]] | None = None
    for calls in sweep:
        if time.monotonic() - began > budget:
            print(f"\nbudget of {budget:.0f} s spent: sweep stopped before {calls} calls")
            break
        bases, bridges = [], []
        for _ in range(repeat):  # interleaved, so a burst of load elsewhere hits one pair, not one side
            bases.append(await asyncio.wait_for(baseline(calls, seconds), seconds + 90))
            bridges.append(await asyncio.wait_for(bridged(calls, seconds), seconds + 180))
        base, bridge = median(bases), median(bridges)
        show(calls, bridge, base)
        why = breaks(bridge, base)
        if why:
            broke = (calls, why)
            break
        held = calls
    print()
    if held is not None:
        print(f"targets hold up to {held} concurrent calls")
    if broke is not None:
        print(f"targets break at {broke[0]} concurrent calls: {'; '.join(broke[1])}")
    elif len(sweep) > 1:
        print("no tested concurrency broke a target")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--loopback-client":
        asyncio.run(loopback_clients(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per run")
    parser.add_argument("--sweep", help="comma-separated concurrencies, tried in order until one breaks")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds a sweep may take in all")
    parser.add_argument("--repeat", type=int, default=1, help="runs per concurrency; medians are shown")
    args = parser.parse_args()
    sweep = [int(n) for n in args.sweep.split(",")] if args.sweep else [args.calls]
    asyncio.run(run(sweep, args.seconds, args.budget, max(1, args.repeat)))


if __name__ == "__main__":
    main()
