"""deploy/kamailio/kamailio.cfg in front of two SIP workers: inbound calls from a SIPp caller are spread
over both, and a dead worker's share fails over to the live one."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from sip.events import InboundEnded, InboundOffered, InboundRoute
from tests.sip.peers import GatewayFactory, free_port, kamailio_command, until
from tests.system_tools import skip_module_unless

pytestmark = pytest.mark.timeout(60)

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "kamailio" / "kamailio.cfg"
IMPORTED = "+442079460150"

skip_module_unless("kamailio", "kamailio")


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Callable[[list[int]], int]]:
    """Start Kamailio dispatching to the given worker ports; returns the port it listens on."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(worker_ports: list[int]) -> int:
        listing = tmp_path / "dispatcher.list"
        listing.write_text("".join(f"1 sip:127.0.0.1:{port} 0 0\n" for port in worker_ports))
        port = free_port()
        args = kamailio_command(CONFIG, port, tmp_path)
        args += ["-A", f'DISPATCHER_LIST="{listing}"']
        with (tmp_path / "kamailio.log").open("wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        time.sleep(0.5)  # bind and load the list
        assert proc.poll() is None, (tmp_path / "kamailio.log").read_text()[-2000:]
        return port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_inbound_calls_spread_over_two_workers(gateway: GatewayFactory, sipp, kamailio) -> None:
    gw = await gateway(workers=2)
    gw.routes[IMPORTED] = InboundRoute(uuid4(), uuid4(), uuid4())
    proxy = kamailio([gw.port, gw.port + 1])
    caller = sipp("uac_via_proxy", calls=4, rate=4, service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{proxy}")
    assert await caller.finished(within=20) == 0
    ended = await until(lambda: [e for e in gw.inbound if isinstance(e, InboundEnded)] if len(
        [e for e in gw.inbound if isinstance(e, InboundEnded)]) == 4 else None, 10)  # fmt: skip
    assert all(e.confirmed and e.called == IMPORTED for e in ended)
    offered = [e for e in gw.inbound if isinstance(e, InboundOffered)]
    assert Counter(e.worker for e in offered) == {"sip-0": 2, "sip-1": 2}, "round robin over both workers"


async def test_a_dead_worker_is_failed_over(gateway: GatewayFactory, sipp, kamailio) -> None:
    gw = await gateway(workers=1)
    gw.routes[IMPORTED] = InboundRoute(uuid4(), uuid4(), uuid4())
    dead = free_port()  # nothing listens here: a worker (or node) that is down
    proxy = kamailio([dead, gw.port])
    caller = sipp("uac_via_proxy", calls=2, rate=1, service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{proxy}")
    # The call sent to the dead worker first waits out Kamailio's 4 s timer, then goes to the live one.
    assert await caller.finished(within=30) == 0, "every call was answered"
    offered = [e for e in gw.inbound if isinstance(e, InboundOffered)]
    assert [e.worker for e in offered] == ["sip-0", "sip-0"]
