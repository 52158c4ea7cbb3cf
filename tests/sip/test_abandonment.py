"""Abandonment through the whole runtime: real SIP (SIPp trunk and caller), real WebSocket workers.

An answered call whose voice worker is not connected within 2 s of the answer (or never) counts in
``dialer_calls_abandoned_total``; every answered call handed to a worker counts in
``dialer_worker_calls_total``; the call record keeps ``worker_connected_at``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from api.services.calls import detail
from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import AttemptRecord, SqlStore, TrunkSpec
from sip.reference_worker import ReferenceWorker
from sip.stream import WORKER_CLOSED, WORKER_SILENT, WORKER_UNREACHABLE
from tests.sip.peers import free_port, until
from tests.sip.workers import GatedWorker

pytestmark = pytest.mark.timeout(60)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's handshake constant

DID = "+442079460100"
CALLEE = "+442079460300"
OUTBOUND = {"campaign": "none", "direction": "outbound"}  # single API calls have no campaign


@dataclass
class Stack:
    store: SqlStore
    runtime: Runtime
    tenant: UUID
    sip_port: int

    async def call(self, worker_url: str, trunk_port: int) -> UUID:
        """Place one outbound call whose agent streams to ``worker_url``; returns its id."""
        agent = await self.store.create_agent(self.tenant, "Bot", worker_url)
        spec = TrunkSpec(name=f"t{trunk_port}", host="127.0.0.1", port=trunk_port, max_cps=50)
        trunk = await self.store.create_trunk(self.tenant, spec)
        did = await self.store.import_number(self.tenant, DID, trunk, country="GB")
        call_id = await self.store.create_call(
            self.tenant, DID, CALLEE, from_did_id=did, trunk_id=trunk, agent_id=agent
        )
        await self.runtime.single_calls.place(call_id)
        return call_id

    def counted(self, name: str, labels: dict[str, str] = OUTBOUND) -> float:
        return self.runtime.metrics.registry.get_sample_value(name, labels) or 0.0

    async def ended(self, call_id: UUID, within: float = 5.0) -> AttemptRecord:
        """The call's row once it has ended (polled every 20 ms, at most ``within`` s)."""
        for _ in range(int(within / 0.02)):
            row = await self.store.get_attempt(call_id)
            if row is not None and row.ended_at is not None:
                return row
            await asyncio.sleep(0.02)
        raise AssertionError(f"the call did not end within {within} s")

    async def call_until_ended(self, worker: Any, sipp: Any, within: float = 5.0) -> AttemptRecord:
        """Start ``worker``, place a call SIPp answers to it, and return its row once it has ended by
        itself (counted by the runtime first); the worker is stopped after."""
        url = await worker.start()
        try:
            peer = sipp("answer", calls=1)
            call_id = await self.call(url, peer.port)
            await self.settled(call_id)
            return await self.ended(call_id, within)
        finally:
            await worker.stop()

    async def settled(self, call_id: UUID) -> None:
        """Once the runtime has counted the call (both counters move together)."""
        await until(lambda: self.counted("dialer_worker_calls_total") >= 1, 10)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    port = free_port()
    settings = Settings(sip_port=port, sip_rtp_port=free_port(40), sip_rtp_ports_per_worker=40)
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="test-node")
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    await runtime.start()
    try:
        yield Stack(store, runtime, tenant, port)
    finally:
        await runtime.stop()
        store.dispose()


async def test_a_worker_that_takes_the_call_is_recorded_and_not_abandoned(stack: Stack, sipp) -> None:
    worker = ReferenceWorker(greeting_seconds=0.2)
    url = await worker.start()
    try:
        peer = sipp("answer", calls=1)
        call_id = await stack.call(url, peer.port)
        await stack.settled(call_id)
        await stack.runtime.hangup_call(stack.tenant, call_id)
        row = await stack.ended(call_id)
        await until(lambda: worker.sessions and worker.sessions[0].stopped, 5)
    finally:
        await worker.stop()
    assert row.answered_at is not None and row.worker_connected_at is not None
    assert 0 <= (row.worker_connected_at - row.answered_at).total_seconds() <= 2
    assert stack.counted("dialer_worker_calls_total") == 1
    assert stack.counted("dialer_calls_abandoned_total") == 0
    view = await stack.store.get_call(stack.tenant, call_id)
    assert (
        view is not None and detail(view, "http://127.0.0.1").worker_connected_at == row.worker_connected_at
    )  # GET /calls/{id}


async def test_a_worker_slow_to_answer_within_2_s_is_not_abandoned(stack: Stack, sipp) -> None:
    worker = GatedWorker([0.6])  # answers the WebSocket handshake 0.6 s late
    url = await worker.start()
    try:
        peer = sipp("answer", calls=1)
        call_id = await stack.call(url, peer.port)
        await stack.settled(call_id)
        await stack.runtime.hangup_call(stack.tenant, call_id)
        row = await stack.ended(call_id)
    finally:
        await worker.stop()
    assert row.answered_at is not None and row.worker_connected_at is not None
    assert (row.worker_connected_at - row.answered_at).total_seconds() >= 0.5
    assert stack.counted("dialer_calls_abandoned_total") == 0


async def test_a_worker_that_never_answers_the_handshake_is_an_abandoned_call(stack: Stack, sipp) -> None:
    worker = GatedWorker([30.0])  # takes the connection and the upgrade request, never answers
    ended = await stack.call_until_ended(worker, sipp)
    assert worker.handshakes == 1
    assert ended.worker_connected_at is None
    assert ended.answered_at is not None and ended.reason is not None and WORKER_UNREACHABLE in ended.reason
    assert stack.counted("dialer_worker_calls_total") == 1
    assert stack.counted("dialer_calls_abandoned_total") == 1


async def test_an_inbound_call_whose_worker_is_unreachable_is_abandoned(stack: Stack, sipp) -> None:
    unreachable = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    agent = await stack.store.create_agent(stack.tenant, "Bot", unreachable)
    trunk = await stack.store.create_trunk(stack.tenant, TrunkSpec(name="in", host="127.0.0.1"))
    await stack.store.import_number(stack.tenant, "+442079460150", trunk, country="GB", agent_id=agent)
    await stack.runtime.refresh_inbound()  # else the workers learn of the number within 2 s
    caller = sipp("uac_answer", service="442079460150", target=f"127.0.0.1:{stack.sip_port}")
    inbound = {"campaign": "none", "direction": "inbound"}
    await until(lambda: stack.counted("dialer_calls_abandoned_total", inbound) == 1, 10)
    assert stack.counted("dialer_worker_calls_total", inbound) == 1
    assert stack.counted("dialer_worker_calls_total") == 0, "nothing counted as outbound"
    await caller.finished()  # its BYE may meet our hang-up: either way the call is over


class HungWorker:
    """A worker whose process hangs right after the WebSocket handshake: the socket stays open, but
    nothing reads it any more, so ``start`` goes out on an open socket and no pong ever comes back."""

    def __init__(self) -> None:
        self.handshakes = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(line.split(":", 1)[1].strip() for line in request.split("\r\n") if
                   line.lower().startswith("sec-websocket-key:"))  # fmt: skip
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        await writer.drain()
        self.handshakes += 1
        self._held.append(writer)  # hung: never read again, never closed until the test ends

    async def stop(self) -> None:
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class OneShotWorker:
    """A worker that, once it has ``start``, says one thing (a mark) and hangs up with a normal closure."""

    def __init__(self) -> None:
        self.starts = 0
        self._server: Server | None = None

    async def start(self) -> str:
        self._server = await serve(self._serve, "127.0.0.1", 0, compression=None)
        return f"ws://127.0.0.1:{next(iter(self._server.sockets)).getsockname()[1]}"

    async def _serve(self, ws: ServerConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("event") != "start":
                continue
            self.starts += 1
            mark = {"event": "mark", "streamSid": message["streamSid"], "mark": {"name": "hi"}}
            await ws.send(json.dumps(mark))
            await ws.close(1000)
            return

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_worker_that_hangs_right_after_the_handshake_is_an_abandoned_call(stack: Stack, sipp) -> None:
    """``start`` went out on an open socket, but nothing there took the call: no message, no pong."""
    worker = HungWorker()
    ended = await stack.call_until_ended(worker, sipp, within=15)
    assert worker.handshakes == 1, "the handshake went through"
    assert ended.answered_at is not None and ended.worker_connected_at is None
    assert ended.reason is not None and WORKER_SILENT in ended.reason
    assert stack.counted("dialer_calls_abandoned_total") == 1


async def test_a_worker_that_closes_normally_has_hung_up(stack: Stack, sipp) -> None:
    ended = await stack.call_until_ended(OneShotWorker(), sipp)
    assert ended.worker_connected_at is not None, "it spoke: it had the call"
    assert ended.outcome == "answered" and ended.reason is not None and WORKER_CLOSED in ended.reason
    assert stack.counted("dialer_calls_abandoned_total") == 0
