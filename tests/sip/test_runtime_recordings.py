"""Recordings through the whole product: POST /calls/create with ``record: true``, a real SIP call to SIPp
(echoing our RTP) streamed to the reference worker, then the call record's ``recording_url``, the WAV
from ``GET /calls/{id}/recording``, the ``call.recording_ready`` webhook, another tenant's 404, and the
retention job deleting it. Storage is a real SQLite file, HTTP is real (uvicorn on loopback).
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.app import create_app
from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import SqlStore, TrunkSpec
from sip.audio import level
from sip.reference_worker import ReferenceWorker
from tests.api.conftest import ROOMY, serve
from tests.api.webhook_receiver import Receiver, eventually, run_receiver
from tests.sip.peers import free_port

pytestmark = pytest.mark.timeout(60)

DID, CALLEE = "+442079460100", "+442079460201"
WORKER_HZ = 1000.0


@dataclass
class Product:
    store: SqlStore
    runtime: Runtime
    client: httpx.AsyncClient  # the tenant's secret key
    stranger: httpx.AsyncClient  # another tenant's secret key
    tenant: UUID
    agent: UUID
    receiver: Receiver
    recordings: Path


@pytest.fixture
async def product(tmp_path: Path) -> AsyncIterator[Product]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    settings = Settings(
        sip_port=free_port(),
        sip_rtp_port=free_port(40),
        sip_rtp_ports_per_worker=40,
        recordings_dir=tmp_path / "rec",
        webhook_allow_private=True,
    )
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="rec-node")
    worker = ReferenceWorker(greeting_hz=WORKER_HZ, greeting_seconds=2.0, echo=False)
    tenant = await store.create_tenant("Acme", default_region="GB")
    other = await store.create_tenant("Other", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    _, key = await store.create_api_key(tenant)
    _, other_key = await store.create_api_key(other)
    await runtime.start()
    app = create_app(
        store, runtime=runtime, limits=ROOMY, webhooks=runtime.webhooks, recordings=runtime.recordings.storage
    )
    try:
        async for receiver in run_receiver(Receiver()):
            _, receiver.secret = await store.create_webhook(tenant, receiver.url, ["call.recording_ready"])
            async for base in serve(app):
                async with (
                    httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}) as client,
                    httpx.AsyncClient(base_url=base, headers={"X-API-Key": other_key}) as stranger,
                ):
                    yield Product(store, runtime, client, stranger, tenant, agent, receiver, tmp_path / "rec")
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


def stereo(body: bytes) -> tuple[int, bytes, bytes]:
    with wave.open(io.BytesIO(body), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    left, right = bytearray(len(frames) // 2), bytearray(len(frames) // 2)
    left[0::2], left[1::2] = frames[0::4], frames[1::4]
    right[0::2], right[1::2] = frames[2::4], frames[3::4]
    return rate, bytes(left), bytes(right)


def loudest(pcm: bytes, hz: float, rate: int) -> float:
    size = int(rate * 0.2) * 2
    return max(level(pcm[at : at + size], hz, rate) for at in range(0, len(pcm) - size + 1, size))


async def call_detail(client: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    response = await client.get(f"/calls/{call_id}")
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


async def test_a_recorded_api_call_is_served_announced_and_expired(product: Product, sipp) -> None:
    peer = sipp("answer", extra=("-rtp_echo",))  # the callee says back what it hears
    trunk = await product.store.create_trunk(
        product.tenant, TrunkSpec(name="carrier", host="127.0.0.1", port=peer.port, max_cps=100)
    )
    await product.store.import_number(product.tenant, DID, trunk, country="GB")
    body = {
        "agent_id": str(product.agent),
        "type": "sip",
        "sip_data": {"to": CALLEE, "from_number": DID, "name": "Ann"},
        "record": True,
    }
    created = await product.client.post("/calls/create", json=body)
    assert created.status_code == 200, created.text
    call_id = created.json()["call_id"]

    async def answered() -> bool:
        return (await call_detail(product.client, call_id))["status"] == "in-progress"

    await eventually(answered, 10)
    await asyncio.sleep(2.5)  # the worker's 2 s greeting, echoed back by the callee
    assert (await product.client.post(f"/calls/{call_id}/hangup")).status_code == 200

    async def recorded() -> bool:
        return (await call_detail(product.client, call_id))["recording_url"] is not None

    await eventually(recorded, 10)
    detail = await call_detail(product.client, call_id)
    url = detail["recording_url"]
    assert url == f"{product.client.base_url}/calls/{call_id}/recording"
    assert detail["extra_details"]["recording_url"] == url
    assert detail["recording"]["requested"] and detail["recording"]["deleted_at"] is None
    assert 2.0 < detail["recording"]["duration_seconds"] < 5.0
    listed = (await product.client.get("/calls")).json()["data"]
    assert [c["recording_url"] for c in listed] == [url]

    wav = await product.client.get(url)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    rate, left, right = stereo(wav.content)
    worker_said, callee_said = loudest(right, WORKER_HZ, rate), loudest(left, WORKER_HZ, rate)
    assert worker_said > 0.3, "the worker's greeting is on the right channel"
    assert callee_said > 0.3, "the callee's echo of it is on the left channel"
    print(f"worker channel {worker_said:.3f}, callee channel (echo) {callee_said:.3f} at 1 kHz")

    stranger = await product.stranger.get(f"/calls/{call_id}/recording")
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "CALL_NOT_FOUND"

    await eventually(lambda: bool(product.receiver.of_type("call.recording_ready")), 10)
    [hook] = product.receiver.of_type("call.recording_ready")
    assert hook.signature_ok
    assert hook.event["data"]["call_id"] == call_id and hook.event["data"]["recording_url"].endswith(
        f"/calls/{call_id}/recording"
    )

    # Retention: 0 days expires it at the next pass; the job deletes the file and the URL goes.
    setting = await product.client.patch("/settings/recordings", json={"retention_days": 0})
    assert setting.status_code == 200 and setting.json() == {"retention_days": 0}
    [kept] = [p for p in product.recordings.rglob("*.wav")]
    assert await product.runtime.retention.tick() == 1
    assert not kept.exists()
    detail = await call_detail(product.client, call_id)
    assert detail["recording_url"] is None and detail["recording"]["deleted_at"] is not None
    gone = await product.client.get(f"/calls/{call_id}/recording")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "RECORDING_NOT_FOUND"
    assert "retention" in gone.json()["error"]["message"]
    assert await product.runtime.retention.tick() == 0, "deleted once"


async def test_a_call_not_recorded_answers_recording_not_found(product: Product) -> None:
    call = await product.store.create_call(product.tenant, DID, CALLEE, agent_id=product.agent)
    response = await product.client.get(f"/calls/{call}/recording")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "RECORDING_NOT_FOUND",
        "message": "this call was not recorded",
    }
    assert (await call_detail(product.client, str(call)))["recording"] is None
