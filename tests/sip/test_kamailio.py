"""deploy/kamailio/kamailio.cfg in front of two SIP workers: inbound calls from a SIPp caller are spread
over both, a dead worker's share fails over to the live one, a source that is no trunk's gets 403
from Kamailio (the workers never see it) and is dropped once it floods (pike)."""

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
TRUNK_SOURCE = "127.0.0.1"
ELSEWHERE = "127.0.0.2"  # no trunk's address

skip_module_unless("kamailio", "kamailio")


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start Kamailio dispatching to the given worker ports, taking calls from 127.0.0.1 only (the
    trunk); returns the port it listens on."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(worker_ports: list[int], pike_density: int = 30) -> int:
        listing = tmp_path / "dispatcher.list"
        listing.write_text("".join(f"1 sip:127.0.0.1:{port} 0 0\n" for port in worker_ports))
        trunks = tmp_path / "trunks.list"
        trunks.write_text(f"1 {TRUNK_SOURCE} 32 0 carrier\n")
        port = free_port()
        args = kamailio_command(CONFIG, port, tmp_path)
        args += ["-A", f'DISPATCHER_LIST="{listing}"', "-A", f'TRUNKS_LIST="{trunks}"']
        args += ["-A", f"PIKE_DENSITY={pike_density}"]
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


async def test_a_source_that_is_no_trunk_gets_403_at_the_edge(
    gateway: GatewayFactory, sipp, kamailio
) -> None:
    gw = await gateway(workers=1)
    gw.routes[IMPORTED] = InboundRoute(uuid4(), uuid4(), uuid4())
    proxy = kamailio([gw.port])
    caller = sipp(
        "uac_refused", service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{proxy}", local_ip=ELSEWHERE
    )
    assert await caller.finished() == 0
    assert "SIP/2.0 403 Forbidden" in caller.messages()
    trunk = sipp("uac_via_proxy", service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{proxy}")
    assert await trunk.finished(within=20) == 0, "the trunk's source is answered as before"
    offered = [e for e in gw.inbound if isinstance(e, InboundOffered)]
    assert len(offered) == 1, "the refused INVITE never reached a worker"


async def test_a_flooding_source_is_dropped_by_pike(
    gateway: GatewayFactory, sipp, kamailio, tmp_path
) -> None:
    gw = await gateway(workers=1)
    proxy = kamailio([gw.port], pike_density=10)
    flood = sipp(
        "uac_refused",
        service=IMPORTED.lstrip("+"),
        target=f"127.0.0.1:{proxy}",
        local_ip=ELSEWHERE,
        calls=200,
        rate=200,
        extra=("-recv_timeout", "2000"),  # a dropped INVITE fails its call after 2 s
    )
    await flood.finished(within=30)
    refused = flood.messages().count("SIP/2.0 403 Forbidden")
    assert 0 < refused < 100, f"{refused} of 200 INVITEs answered: pike stopped answering the flood"
    assert "flood from 127.0.0.2 dropped" in (tmp_path / "kamailio.log").read_text()
    assert gw.inbound == [], "nothing reached the worker"
