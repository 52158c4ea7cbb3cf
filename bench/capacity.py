"""Capacity per box: ramps concurrent answered calls against SIPp (a C far end) until a target breaks.

    python bench/capacity.py [--sweep 8,16,32,48,64,80,100] [--seconds 5] [--budget 900]
    python bench/capacity.py --mode sip [--sweep 50,100,150,200]       calls bridged to a SIP-URI worker
    [--workers N]  SIP worker processes for a high-capacity pjsua2 (default 2); the PyPI wheel: calls / 4

``stream`` mode (default): the gateway (our SipGateway, its worker processes) places N calls to SIPp,
which answers with ``-rtp_echo``: every frame the voice worker speaks goes out as RTP, comes back and is
streamed to the worker again. The voice worker and the measurements are bench/media.py's: lateness of
the frames the worker hears against their 20 ms schedule, lateness of the worker's audio at play-out
(its marks' echoes), lost frames; the baseline is the same worker with N plain WebSocket clients doing
the per-call work without SIP. Targets: <= 20 ms p99 added each way, 0 lost, every call streamed.

``sip`` mode: each call is bridged in pjsua's conference bridge to a second leg to a SIP-URI voice worker
(a second SIPp, ``-rtp_echo``); no Python per frame. Target: every call up, RTP received on every call
at >= 90% of 50 packets/s over the window, 0 RTP lost.

Per concurrency it prints CPU per call (the gateway's SIP worker processes), RSS per call, and before
the calls the idle CPU per worker process; at the end the largest concurrency that held. Which pjsua2
is in use (PyPI wheel, 4 calls a process, or deploy/build-pjsua2's) is found as the gateway finds it.
Bounded: fixed windows, a deadline on every wait, ``--budget`` seconds for the whole ramp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import media as mb  # noqa: E402  # bench/media.py: the timing worker, the baseline, the judging

from dialer.demo_carrier import free_port  # noqa: E402
from dialer.ports import CallRequest  # noqa: E402
from sip.events import MediaStats  # noqa: E402
from sip.launcher import SipGateway  # noqa: E402
from sip.trunks import TrunkConfig  # noqa: E402

WHEEL_CALLS_PER_WORKER = 4
IDLE_SECONDS = 5.0
RTP_RANGE = 4  # RTP ports per call in a worker's range (RTP + RTCP, and room for reuse)
SATURATED_MS = 60.0  # a baseline p99 above this: the box, not the bridge, sets the latency


@dataclass
class Box:
    cpu_per_call: float  # % of a core, SIP worker processes
    rss_per_call_mb: float
    idle_per_worker: float  # % of a core, before any call
    workers: int


def rtp_base(span: int) -> int:
    """A UDP port range below Linux's ephemeral ports (32768+), where no other process's connection
    takes a port between this check and the gateway binding it (a collision stalls a call's set-up)."""
    for base in range(10000, 32768 - span, 1000):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + span):
                    stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)).bind(
                        ("127.0.0.1", port)
                    )
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {span} free UDP ports below 32768")


def built() -> bool:
    """Whether the pjsua2 in use is deploy/build-pjsua2's (what sip/endpoint.py also checks)."""
    return importlib.util.find_spec("pjsua2_build") is not None


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


class Sipp:
    """SIPp answering every call (built-in ``uas`` scenario, SDP with PCMU) and echoing RTP."""

    def __init__(self) -> None:
        self.port = free_port()
        sipp = shutil.which("sipp")
        if sipp is None:
            raise SystemExit("sipp not found (apt-get install sip-tester)")
        self.proc = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.port), "-mp", str(free_port()),
             "-rtp_echo", "-nostdin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def gateway_run(
    calls: int, seconds: float, mode: str, workers: int
) -> tuple[mb.Run | None, Box, list[str]]:
    """One ramp step: start a gateway, measure it idle, place ``calls`` and measure them."""
    far, worker_peer = Sipp(), Sipp() if mode == "sip" else None
    worker = mb.TimingWorker(seconds + mb.WARMUP + 30)
    url = await worker.start()
    agent = uuid4()
    target = f"sip:worker@127.0.0.1:{worker_peer.port}" if worker_peer else url

    async def urls(agent_id: UUID) -> str | None:
        return target if agent_id == agent else None

    trunk = TrunkConfig(id=uuid4(), host="127.0.0.1", port=far.port)

    async def lookup(trunk_id: UUID) -> TrunkConfig | None:
        return trunk if trunk_id == trunk.id else None

    legs = 2 if mode == "sip" else 1
    per_worker = -(-calls * legs // workers)
    span = max(40, RTP_RANGE * per_worker)
    gateway = SipGateway(
        lookup, port=free_port(workers), workers=workers, rtp_port=rtp_base(span * workers),
        rtp_ports_per_worker=span, worker_urls=urls, max_calls_per_worker=max(per_worker + 8, 16),
    )  # fmt: skip
    stats: list[MediaStats] = []
    gateway.on_media = lambda attempt_id, media: stats.append(media)
    why: list[str] = []
    try:
        await gateway.start()
        pids = [pid for pid in gateway.workers().values() if pid is not None]
        cpu0 = mb.cpu_seconds(pids)
        await asyncio.sleep(IDLE_SECONDS)
        idle = (mb.cpu_seconds(pids) - cpu0) / len(pids) / IDLE_SECONDS * 100
        if gateway.capacity() < calls:
            return None, Box(0, 0, idle, len(pids)), [f"capacity {gateway.capacity()} < {calls}"]
        requests = [
            CallRequest(uuid4(), uuid4(), uuid4(), trunk.id, "+14155550100", mb.NUMBER, 10, 1, agent)
            for _ in range(calls)
        ]
        for request in requests:
            await gateway.place(request)
        if mode == "stream":
            try:
                run = await mb.measured(worker, calls, pids, seconds)
            except RuntimeError as exc:  # not every stream started in 30 s: this step broke
                return None, Box(0, rss_mb(pids) / calls, idle, len(pids)), [str(exc)]
        else:
            run = await bridged_only(gateway, calls, pids, seconds)
        box = Box(run.cpu_per_call, rss_mb(pids) / calls, idle, len(pids))
        for request in requests:
            await gateway.hangup(request.attempt_id)
        if mode == "sip":
            for _ in range(200):  # the calls' RTP counts come with their ends (10 s at most)
                if len(stats) >= calls:
                    break
                await asyncio.sleep(0.05)
            why = rtp_misses(stats, calls, seconds + mb.WARMUP)
        return run, box, why
    finally:
        await gateway.stop()
        await worker.stop()
        far.stop()
        if worker_peer is not None:
            worker_peer.stop()


async def bridged_only(gateway: SipGateway, calls: int, pids: list[int], seconds: float) -> mb.Run:
    """Wait (bounded) until every call is up and bridged, then measure the window's CPU."""
    for _ in range(600):  # 30 s at most
        live = gateway._calls.values()  # a bench may look inside
        if sum(1 for call in live if call.answered) >= calls:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(mb.WARMUP)
    start, cpu0 = time.monotonic(), mb.cpu_seconds(pids)
    await asyncio.sleep(seconds)
    cpu = (mb.cpu_seconds(pids) - cpu0) / calls / (time.monotonic() - start) * 100
    none = mb.Direction(0.0, 0.0, 0, 0)
    return mb.Run(calls, none, none, cpu)


def rtp_misses(stats: list[MediaStats], calls: int, seconds: float) -> list[str]:
    why = []
    if len(stats) < calls:
        why.append(f"{calls - len(stats)} calls without RTP counts")
    short = sum(1 for s in stats if s.rx_packets < 0.9 * 50 * seconds)
    lost = sum(s.rx_lost for s in stats)
    if short:
        why.append(f"{short} calls received < 90% of their RTP")
    if lost:
        why.append(f"{lost} RTP packets lost")
    return why


async def ramp(
    sweep: list[int], seconds: float, budget: float, mode: str, workers_arg: int, repeat: int
) -> None:
    began = time.monotonic()
    kind = "deploy/build-pjsua2" if built() else f"PyPI wheel ({WHEEL_CALLS_PER_WORKER} calls a process)"
    print(f"pjsua2: {kind}; mode {mode}; load average {os.getloadavg()[0]:.2f}")
    held: tuple[int, Box, float] | None = None
    unjudged: list[int] = []  # concurrencies whose latency could not be judged against the baseline
    for calls in sweep:
        if time.monotonic() - began > budget:
            print(f"\nbudget of {budget:.0f} s spent: ramp stopped before {calls} calls")
            break
        legs = 2 if mode == "sip" else 1
        workers = workers_arg if built() else -(-calls * legs // WHEEL_CALLS_PER_WORKER)
        bases, runs, boxes, why = [], [], [], []
        for _ in range(repeat):
            if mode == "stream":
                bases.append(await asyncio.wait_for(mb.baseline(calls, seconds), seconds + 90))
            run, box, missed = await asyncio.wait_for(
                gateway_run(calls, seconds, mode, workers), seconds + 240
            )
            why += missed
            boxes.append(box)
            if run is not None:
                runs.append(run)
        box = Box(*(sorted(getattr(b, f) for b in boxes)[len(boxes) // 2] for f in Box.__dataclass_fields__))
        ratio = float("nan")
        if runs and mode == "stream":
            base, run = mb.median(bases), mb.median(runs)
            mb.show(calls, run, base)
            why += mb.breaks(run, base)
            ratio = run.cpu_per_call / max(base.cpu_per_call, 0.01)
            if max(base.heard.p99, base.spoken.p99) > SATURATED_MS:
                unjudged.append(calls)
                print(
                    f"  latency NOT judged at {calls} calls: the plain-WebSocket baseline's own p99 is "
                    f"{base.heard.p99:.0f} / {base.spoken.p99:.0f} ms (machine or bench process saturated); "
                    f"the bridge's absolute p99 is {run.heard.p99:.0f} / {run.spoken.p99:.0f} ms"
                )
        print(
            f"{calls} calls, {box.workers} SIP worker processes: CPU/call {box.cpu_per_call:.2f}% of a core, "
            f"RSS/call {box.rss_per_call_mb:.1f} MB, idle CPU/worker {box.idle_per_worker:.2f}%"
            + (f", {ratio:.1f}x plain WebSocket clients" if mode == "stream" else "")
            + f"; load average {os.getloadavg()[0]:.2f}"
        )
        if why:
            print(f"targets break at {calls} calls: {'; '.join(sorted(set(why)))}")
            break
        held = (calls, box, ratio)
    if held is None:
        print("\nno tested concurrency held")
        return
    calls, box, ratio = held
    if unjudged:
        print(f"\nlatency not judged (baseline saturated) at: {', '.join(map(str, unjudged))} calls")
    print(
        f"\nlargest that held: {calls} calls ({mode}); CPU/call {box.cpu_per_call:.2f}% of a core"
        + (f" ({ratio:.1f}x plain WebSocket clients)" if mode == "stream" else "")
        + f", RSS/call {box.rss_per_call_mb:.1f} MB, idle CPU/worker {box.idle_per_worker:.2f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("stream", "sip"), default="stream")
    parser.add_argument("--sweep", default="8,16,32,48,64,80,100")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per step")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds the whole ramp may take")
    parser.add_argument("--workers", type=int, default=2, help="worker processes with a built pjsua2")
    parser.add_argument("--repeat", type=int, default=1, help="runs per step (medians)")
    args = parser.parse_args()
    sweep = [int(n) for n in args.sweep.split(",")]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(ramp(sweep, args.seconds, args.budget, args.mode, args.workers, args.repeat))


if __name__ == "__main__":
    main()
