"""SIP load: calls/s and concurrent calls, SipGateway vs a bare pjsua2 script, against SIPp on loopback.

    python bench/sip_load.py [--calls 400] [--workers 2] [--hold 2]

Phase 1 (calls/s): ``--calls`` calls, each answered by SIPp and hung up by us as soon as it is
CONFIRMED, as many at once as the stack holds. Phase 2 (concurrency): fill every slot, hold the calls
``--hold`` seconds, count failures, read CPU and RSS. The bare baseline runs the same phases in one
process with pjsua2 called directly from its own thread (``--bare``), no pipe, no supervisor.
Targets: gateway calls/s per worker >= 0.8 x bare; capacity = workers x per-worker cap, no failed call.
Everything is bounded: a fixed number of calls and a deadline per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHASE_SECONDS = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- the bare baseline: pjsua2 straight from one thread ---------------------------------------------


def bare(target: str, calls: int, hold: float) -> dict[str, float]:
    import pjsua2 as pj

    from sip.calls import SOCKET_REUSE_SECONDS, CallTable

    media_transports = CallTable(lambda event: None, 64).media_transports()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt, cfg.uaConfig.mainThreadOnly, cfg.uaConfig.maxCalls = 0, True, 512
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    transport = pj.TransportConfig()
    transport.port = free_port()
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    account_cfg = pj.AccountConfig()
    account_cfg.idUri = "sip:bare@127.0.0.1"
    account_cfg.mediaConfig.lockCodecEnabled = False
    account = pj.Account()
    account.create(account_cfg)
    state = {"live": 0, "ended": 0, "confirmed": 0, "failed": 0, "hang_up": True}
    finished: list[pj.Call] = []

    class Call(pj.Call):  # type: ignore[misc]
        def onCallState(self, prm: pj.OnCallStateParam) -> None:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                state["confirmed"] += 1
                if state["hang_up"]:
                    self.hangup(pj.CallOpParam())
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                state["live"] -= 1
                state["ended"] += 1
                state["failed"] += info.lastStatusCode != 200
                finished.append(self)
                closed.append(time.monotonic())

    live: list[Call] = []
    closed: deque[float] = deque()
    uri = f"sip:+14155552671@{target}"

    def dial() -> bool:
        # The same media-socket budget as sip/calls.py: the wheel aborts when its ioqueue overflows.
        while closed and closed[0] + SOCKET_REUSE_SECONDS < time.monotonic():
            closed.popleft()
        if len(live) + len(closed) + 1 > media_transports:
            return False
        call = Call(account)
        try:
            call.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as exc:
            if exc.status == 70010:
                return False
            raise
        live.append(call)
        state["live"] += 1
        return True

    def pump() -> None:
        ep.libHandleEvents(5)
        for call in finished:
            live.remove(call)
        finished.clear()

    # phase 1: calls/s
    cap, started, cpu0, t0 = 0, 0, time.process_time(), time.monotonic()
    while state["ended"] < calls and time.monotonic() - t0 < PHASE_SECONDS:
        while started < calls and dial():
            started += 1
            cap = max(cap, state["live"])
        pump()
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    result = {
        "cps": state["ended"] / elapsed,
        "cap": cap,
        "cps_failed": state["failed"],
        "cpu_ms": cpu / calls * 1e3,
    }
    # phase 2: hold every slot, once the media sockets of phase 1 are reusable
    quiet = time.monotonic() + SOCKET_REUSE_SECONDS + 0.1
    while time.monotonic() < quiet:
        pump()
    state.update(hang_up=False, confirmed=0, failed=0)
    rss0 = rss_kib(os.getpid())
    held = 0
    while dial():
        held += 1
    deadline = time.monotonic() + 10
    while state["confirmed"] < held and time.monotonic() < deadline:
        pump()
    cpu0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < hold:
        pump()
    result.update(
        held=held,
        held_confirmed=state["confirmed"],
        held_failed=state["failed"],
        rss_kib=(rss_kib(os.getpid()) - rss0) / max(held, 1),
        hold_cpu=(time.process_time() - cpu0) / (time.monotonic() - t0) * 100 / max(held, 1),
    )
    ep.hangupAllCalls()
    for _ in range(100):
        pump()
    live.clear()
    account.shutdown()
    ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
    return result


# ---- the gateway ---------------------------------------------------------------------------------


async def through_gateway(target_port: int, workers: int, calls: int, hold: float) -> dict[str, float]:
    from dialer.ports import CallAnswered, CallEnded, CallEvent, CallRequest, LauncherFull
    from sip.launcher import SipGateway
    from sip.trunks import TrunkConfig

    trunk = TrunkConfig(id=uuid4(), host="127.0.0.1", port=target_port)

    async def lookup(_: object) -> TrunkConfig:
        return trunk

    gateway = SipGateway(lookup, port=free_port(), workers=workers, rtp_port=40000, rtp_ports_per_worker=1000)
    await gateway.start()
    pids = [pid for pid in gateway.workers().values() if pid]
    cap = gateway.capacity()
    state = {"ended": 0, "failed": 0, "confirmed": 0, "hang_up": True, "full": 0}
    slot_freed, all_confirmed = asyncio.Event(), asyncio.Event()
    hangups: set[asyncio.Task[None]] = set()

    def on_event(event: CallEvent) -> None:
        if isinstance(event, CallAnswered):
            state["confirmed"] += 1
            if state["confirmed"] == cap:
                all_confirmed.set()
            if state["hang_up"]:
                task = asyncio.ensure_future(gateway.hangup(event.attempt_id))
                hangups.add(task)
                task.add_done_callback(hangups.discard)
        elif isinstance(event, CallEnded):
            state["ended"] += 1
            state["failed"] += not event.confirmed
            slot_freed.set()

    gateway.on_event = on_event

    def request() -> CallRequest:
        return CallRequest(uuid4(), uuid4(), uuid4(), trunk.id, "+14155550100", "+14155552671", 30, 1)

    def cpu() -> float:
        return sum(cpu_seconds(pid) for pid in [os.getpid(), *pids])

    # phase 1: calls/s, keeping every slot busy
    cpu0, t0, placed = cpu(), time.monotonic(), 0
    while state["ended"] < calls and time.monotonic() - t0 < PHASE_SECONDS:
        if placed < calls and placed - state["ended"] < cap:
            try:
                await gateway.place(request())
                placed += 1
                continue
            except LauncherFull:
                state["full"] += 1
        slot_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slot_freed.wait(), 1.0)
    elapsed = time.monotonic() - t0
    result = {
        "cps": state["ended"] / elapsed,
        "cap": cap,
        "cps_failed": state["failed"],
        "full": state["full"],
        "cpu_ms": (cpu() - cpu0) / calls * 1e3,
    }
    # phase 2: hold every slot, once the media sockets of phase 1 are reusable
    await asyncio.sleep(0.7)
    state.update(hang_up=False, confirmed=0, failed=0)
    rss0 = sum(rss_kib(pid) for pid in pids)
    for _ in range(cap):
        await gateway.place(request())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_confirmed.wait(), 10)
    cpu0, t0 = cpu(), time.monotonic()
    await asyncio.sleep(hold)
    result.update(
        held=cap,
        held_confirmed=state["confirmed"],
        held_failed=state["failed"],
        rss_kib=(sum(rss_kib(pid) for pid in pids) - rss0) / cap,
        hold_cpu=(cpu() - cpu0) / (time.monotonic() - t0) * 100 / cap,
    )
    await gateway.stop()
    return result


def report(workers: int, rows: list[tuple[str, dict[str, float]]]) -> None:
    columns = ("calls/s", "cap", "failed", "CPU ms/call", "held", "RSS KiB/call", "CPU %/held call")
    print(f"{'':26}" + "".join(f"{name:>16}" for name in columns))
    for name, row in rows:
        cells = (
            f"{row['cps']:.0f}",
            f"{row['cap']:.0f}",
            f"{row['cps_failed'] + row['held_failed']:.0f}",
            f"{row['cpu_ms']:.2f}",
            f"{row['held_confirmed']:.0f}",
            f"{row['rss_kib']:.0f}",
            f"{row['hold_cpu']:.2f}",
        )
        print(f"{name:26}" + "".join(f"{cell:>16}" for cell in cells))
    (_, base), (_, one), (_, many) = rows
    print(f"calls/s per worker vs bare: {one['cps'] / base['cps']:.2f}x (target >= 0.8)")
    print(f"calls/s, {workers} workers vs bare: {many['cps'] / base['cps']:.2f}x")
    expected = workers * one["cap"]
    held_ok = many["held_confirmed"] == expected and many["held_failed"] == many["cps_failed"] == 0
    print(f"capacity {many['cap']:.0f} = {workers} workers x {one['cap']:.0f}: {many['cap'] == expected}")
    print(f"all {many['held_confirmed']:.0f} held calls confirmed, no failed call: {held_ok}")
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--bare", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        print(json.dumps(bare(args.bare, args.calls, args.hold)))
        return
    sipp = shutil.which("sipp")
    if sipp is None:
        sys.exit("SIPp is not installed")
    port = free_port()
    peer = subprocess.Popen(
        [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()), "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)
        bare_args = ["--bare", f"127.0.0.1:{port}", "--calls", str(args.calls), "--hold", str(args.hold)]
        bare_out = subprocess.run(
            [sys.executable, __file__, *bare_args],
            capture_output=True,
            text=True,
            timeout=PHASE_SECONDS * 3,
            check=True,
        ).stdout
        base = json.loads(bare_out.strip().splitlines()[-1])
        one = asyncio.run(through_gateway(port, 1, args.calls, args.hold))
        many = asyncio.run(through_gateway(port, args.workers, args.calls, args.hold))
    finally:
        peer.kill()
        peer.wait()
    rows = [
        ("bare pjsua2, 1 process", base),
        ("gateway, 1 worker", one),
        (f"gateway, {args.workers} workers", many),
    ]
    report(args.workers, rows)


if __name__ == "__main__":
    main()
