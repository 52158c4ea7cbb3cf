"""Real peers for the SIP tests: SIPp processes on loopback ports, free ports, a gateway harness."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from dialer.ports import CallEnded, CallEvent, CallRequest
from sip.events import InboundEnded, InboundEvent, InboundRoute
from sip.launcher import SipGateway
from sip.trunks import TrunkConfig
from tests.system_tools import require

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")
CALLEE = "+14155552671"  # a valid US number; phone numbers in tests are fictional
DID = "+14155550100"


def free_port(span: int = 1) -> int:
    """A port P such that P..P+span-1 are free for both UDP and TCP on loopback right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span >= 65000:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + span):
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        sock = stack.enter_context(socket.socket(socket.AF_INET, kind))
                        sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


class Sipp:
    """One SIPp process; killed at teardown if it has not finished."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(
        self,
        scenario: str,
        *,
        calls: int = 1,
        keys: dict[str, str] | None = None,
        target: str | None = None,
        service: str | None = None,
        rate: int | None = None,
        transport: str | None = None,
        fill: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
        local_ip: str = "127.0.0.1",  # e.g. 127.0.0.2: a source that is no trunk's
    ) -> Sipp:
        assert SIPP is not None
        self.port = free_port()
        path = SCENARIOS / f"{scenario}.xml"
        if fill:  # SIPp validates response codes when it loads a scenario: -key cannot set them
            text = path.read_text()
            for name, value in fill.items():
                text = text.replace(f"@{name}@", value)
            path = self.tmp / f"{scenario}-{self.port}.xml"
            path.write_text(text)
        args = [SIPP, "-sf", str(path), "-i", local_ip, "-p", str(self.port)]
        args += ["-mp", str(free_port(4)), "-m", str(calls), "-nostdin", "-timeout", "60s", "-timeout_error"]
        args += ["-trace_msg", "-message_file", str(self.tmp / f"{scenario}-{self.port}.log")]
        args += ["-trace_err", "-error_file", str(self.tmp / f"{scenario}-{self.port}-errors.log")]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        if service is not None:
            args += ["-s", service]
        if transport is not None:
            args += ["-t", transport]
        if rate is not None:
            args += ["-r", str(rate)]
        args += extra  # e.g. ("-rtp_echo",)
        if target is not None:
            args.append(target)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.05)  # let it bind before anyone sends to it
        return self

    def messages(self) -> str:
        return (self.tmp / next(p.name for p in self.tmp.glob(f"*-{self.port}.log"))).read_text(
            errors="replace"
        )

    async def finished(self, within: float = 15.0) -> int:
        """SIPp's exit code once it has processed its calls (0: every call passed the scenario)."""
        proc = self.proc
        assert proc is not None
        return int(await until(lambda: proc.poll() is not None and str(proc.returncode), within))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@dataclass
class Harness:
    """A started gateway, the trunks it knows and every event it emitted."""

    gateway: SipGateway
    port: int
    trunks: dict[UUID, TrunkConfig]
    events: list[CallEvent] = field(default_factory=list)
    inbound: list[InboundEvent] = field(default_factory=list)
    routes: dict[str, InboundRoute] = field(default_factory=dict)

    def trunk(self, port: int, **kwargs: Any) -> TrunkConfig:
        trunk = TrunkConfig(id=uuid4(), host="127.0.0.1", port=port, **kwargs)
        self.trunks[trunk.id] = trunk
        return trunk

    def request(self, trunk: TrunkConfig, timeout: int = 10, to: str = CALLEE) -> CallRequest:
        return CallRequest(uuid4(), uuid4(), uuid4(), trunk.id, DID, to, timeout, lease_token=1)

    async def ended(self, attempt_id: UUID, within: float = 10.0) -> CallEnded:
        return await until(lambda: next(
            (e for e in self.events if isinstance(e, CallEnded) and e.attempt_id == attempt_id), None
        ), within)  # fmt: skip

    async def inbound_ended(self, within: float = 10.0) -> InboundEnded:
        return await until(
            lambda: next((e for e in self.inbound if isinstance(e, InboundEnded)), None), within
        )


async def until(probe: Callable[[], Any], within: float) -> Any:
    """Poll ``probe`` every 20 ms until it returns something truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    for _ in range(int(within / 0.02) + 1):
        value = probe()
        if value or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert value, f"nothing after {within} s"
    return value


GatewayFactory = Callable[..., Awaitable[Harness]]


def kamailio_command(config: Path, port: int, run_dir: Path) -> list[str]:
    """Kamailio in the foreground on udp:127.0.0.1:``port`` with ``config``, its runtime files in
    ``run_dir``, small shared/private memory; add ``-A NAME=value`` defines after it."""
    kamailio = require("kamailio", "kamailio")
    args = [kamailio, "-f", str(config), "-DD", "-E", "-l", f"udp:127.0.0.1:{port}", "-Y", str(run_dir)]
    return [*args, "-m", "32", "-M", "4"]
