"""A real pipecat bot (pipecat-ai from PyPI: its TwilioFrameSerializer and FastAPIWebsocketTransport,
unchanged) as the voice worker of a real call through the gateway.

A Runtime (SQLite, SIP workers) calls a SIPp callee that echoes its RTP (``-rtp_echo``); the call is
streamed to the bot over Media Streams. The bot plays a tone and hears it come back through the callee
(audio both ways), then ends its pipeline: pipecat's serializer POSTs ``Status=completed`` to our
Twilio-compatible route (its ``base_url`` = our API, Basic auth = tenant id + secret key), and the call
ends as answered, hung up by us, with SIPp seeing our BYE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
import uvicorn

from api.app import create_app
from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.regions import load_rules
from dialer.runtime import API_HANGUP, Runtime
from dialer.storage import AttemptRecord, SqlStore, TrunkSpec
from dialer.storage.records import attempt_from_row
from dialer.storage.tables import attempts
from tests.api.conftest import serve
from tests.sip.peers import free_port, until
from tests.sip.transfer_peers import fill, waits_for_bye
from tests.system_tools import import_or_skip

import_or_skip("pipecat", "pip install -c constraints.txt -e '.[pipecat]'")

from tests.sip.pipecat_bot import HEARD_ENOUGH, BotReport, bot_app  # noqa: E402

pytestmark = [
    pytest.mark.timeout(60),
    # pipecat 1.14's hang-up passes aiohttp.BasicAuth as ``auth=``, both of which aiohttp 3.14
    # deprecates: under the suite's warnings-as-errors they would stop the very request under test.
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]

DID = "+442079460100"
CALLEE = "+442079460300"


async def serve_websockets(app: object) -> AsyncIterator[str]:
    """Run ``app`` (with its WebSocket routes) under uvicorn on a free loopback port."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


def ended_row(store: SqlStore, call_id: UUID) -> AttemptRecord | None:
    """The call's row once it has ended (read synchronously so ``until`` can poll it)."""
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(attempts).where(attempts.c.id == call_id)).mappings().one()
    record = attempt_from_row(found)
    return record if record.ended_at is not None else None


async def test_a_pipecat_twilio_bot_talks_and_hangs_up_through_the_twilio_compatible_api(
    tmp_path: Path, sipp: Any
) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    settings = Settings(sip_port=free_port(), sip_rtp_port=free_port(40), sip_rtp_ports_per_worker=40)
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="test-node")
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    _key_id, key = await store.create_api_key(tenant)
    report = BotReport()
    await runtime.start()
    try:
        async for api in serve(create_app(store, runtime=runtime, metrics=runtime.metrics)):
            bot = bot_app(report, api_base=api, account_sid=str(tenant), auth_token=key)
            async for bot_host in serve_websockets(bot):
                agent = await store.create_agent(tenant, "Pipecat bot", f"ws://{bot_host}/ws")
                callee = sipp("refer_trunk", fill=fill(waits_for_bye()), extra=("-rtp_echo",))
                spec = TrunkSpec(name="t", host="127.0.0.1", port=callee.port, max_cps=100)
                trunk = await store.create_trunk(tenant, spec)
                did = await store.import_number(tenant, DID, trunk, country="GB")
                call = await store.create_call(
                    tenant, DID, CALLEE, from_did_id=did, trunk_id=trunk, agent_id=agent
                )
                await runtime.single_calls.place(call)

                ended = await until(partial(ended_row, store, call), 30)
                await asyncio.wait_for(report.ended.wait(), 10)
                assert await callee.finished() == 0, "SIPp got our BYE and answered it"
    finally:
        await runtime.stop()
        store.dispose()

    assert report.call_data["call_id"] == str(call) and report.call_data["stream_id"]
    assert report.call_data["to_number"] == CALLEE and report.call_data["from_number"] == DID
    assert report.tone_frames >= HEARD_ENOUGH, "the bot heard its tone come back from the callee"
    assert ended.outcome == "answered" and ended.sip_code == 200, ended
    assert ended.worker_connected_at is not None and ended.answered_at is not None
    # Ended by the serializer's REST call, not by the bot's socket closing first.
    assert ended.reason is not None and API_HANGUP in ended.reason, ended.reason
    labels = {
        "method": "POST",
        "route": "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json",
        "status": "200",
    }
    assert runtime.metrics.registry.get_sample_value("dialer_http_requests_total", labels) == 1
    assert report.hung_up_at is not None and ended.ended_at is not None
    took = (ended.ended_at - report.hung_up_at).total_seconds() * 1000
    print(f"bot ended its pipeline -> call ended: {took:.0f} ms")
    print(f"bot heard {report.frames_in} frames, {report.tone_frames} of its tone; reason: {ended.reason}")
