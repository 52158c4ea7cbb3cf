"""Recordings in an S3 bucket: moto's S3 server (a real HTTP S3 implementation) in its own process, with
authentication on, so every request dialer/s3.py signs is checked (a wrong secret is refused).

A finished recording is uploaded and leaves the local folder; the API streams it back from the bucket;
the retention job deletes the object. On SQLite and PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import boto3
import httpx
import pytest

from api.app import create_app
from dialer.recordings import Recordings, RecordingStorage
from dialer.s3 import S3Client, S3Config, S3Error
from dialer.storage import SqlStore
from sip.events import RecordingMade
from tests.api.conftest import ROOMY, FakeRuntime, Tenant, make_tenant, serve
from tests.sip.peers import free_port

BUCKET = "recordings"
ALLOW_S3 = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Config]:
    """moto's server with auth enforced after the 3 unauthenticated IAM calls that make our user."""
    port = free_port()
    env = os.environ | {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(250):  # up to 10 s to start
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=0.5, trust_env=False)
                break
            except httpx.HTTPError:
                assert server.poll() is None, "moto server exited"
                subprocess.run(["sleep", "0.04"], check=True)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        iam.create_user(UserName="dialer")
        iam.put_user_policy(UserName="dialer", PolicyName="s3", PolicyDocument=ALLOW_S3)
        key = iam.create_access_key(UserName="dialer")["AccessKey"]
        config = S3Config(endpoint, BUCKET, key["AccessKeyId"], key["SecretAccessKey"], "us-east-1")
        S3Client(config).create_bucket()
        yield config
    finally:
        server.kill()
        server.wait(timeout=5)


def tone_wav(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(range(256)) * int(seconds * 8000 * 4 / 256))
    return path


@dataclass
class World:
    store: SqlStore
    acme: Tenant
    recordings: Recordings
    folder: Path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def world(store: SqlStore, s3_server: S3Config, tmp_path: Path) -> AsyncIterator[World]:
    storage = RecordingStorage(tmp_path / "rec", S3Client(s3_server))
    recordings = Recordings(store, storage, None, "http://dialer.example")
    app = create_app(store, runtime=FakeRuntime(), limits=ROOMY, recordings=storage)
    async for url in serve(app):
        async for acme in make_tenant(store, url):
            yield World(store, acme, recordings, tmp_path / "rec")


async def made(world: World, seconds: float = 1.0) -> tuple[UUID, Path]:
    call = await world.store.create_call(world.acme.id, "+14155550100", "+14155552671", record=True)
    path = tone_wav(world.folder / str(world.acme.id) / f"{call}.wav", seconds)
    return call, path


async def test_a_recording_goes_to_the_bucket_and_is_served_from_it(world: World) -> None:
    call, path = await made(world)
    sent = path.read_bytes()
    event = RecordingMade(call, world.acme.id, str(path), 1.0, datetime.now(UTC))
    location = await world.recordings.keep(event)
    assert location == f"s3://{BUCKET}/recordings/{world.acme.id}/{call}.wav"
    assert not path.exists(), "uploaded: the local copy is gone"
    detail = (await world.acme.client.get(f"/calls/{call}")).json()
    assert detail["recording_url"] == f"{world.acme.client.base_url}/calls/{call}/recording"
    response = await world.acme.client.get(f"/calls/{call}/recording")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert response.content == sent


async def test_retention_deletes_the_object(world: World) -> None:
    call, path = await made(world, 0.2)
    await world.recordings.keep(RecordingMade(call, world.acme.id, str(path), 0.2, datetime.now(UTC)))
    await world.store.set_recording_retention(world.acme.id, 7)
    assert await world.recordings.purge(datetime.now(UTC) + timedelta(days=6)) == 0, "not expired yet"
    assert await world.recordings.purge(datetime.now(UTC) + timedelta(days=8)) == 1
    client = world.recordings.storage.s3
    assert client is not None
    with pytest.raises(S3Error) as missing:
        async for _ in client.stream(f"recordings/{world.acme.id}/{call}.wav"):
            pass
    assert missing.value.status == 404
    gone = await world.acme.client.get(f"/calls/{call}/recording")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "RECORDING_NOT_FOUND"


async def test_a_wrong_secret_is_refused_by_the_server(s3_server: S3Config, tmp_path: Path) -> None:
    wrong = S3Client(S3Config(s3_server.endpoint, BUCKET, s3_server.access_key, "not-the-secret"))
    with pytest.raises(S3Error) as refused:
        await asyncio.to_thread(wrong.put_file, "x.wav", tone_wav(tmp_path / "x.wav", 0.1))
    assert refused.value.status == 403 and "SignatureDoesNotMatch" in str(refused.value)


async def test_a_failed_upload_keeps_the_recording_locally(store: SqlStore, tmp_path: Path) -> None:
    acme = await store.create_tenant("Acme")
    dead = S3Client(S3Config(f"http://127.0.0.1:{free_port()}", BUCKET, "k", "s"), timeout=2)
    recordings = Recordings(store, RecordingStorage(tmp_path / "rec", dead), None, "http://dialer.example")
    call = await store.create_call(acme, "+14155550100", "+14155552671", record=True)
    path = tone_wav(tmp_path / "rec" / str(acme) / f"{call}.wav", 0.1)
    location = await recordings.keep(RecordingMade(call, acme, str(path), 0.1, datetime.now(UTC)))
    assert location == str(path.resolve()) and path.exists()
    stored = await store.get_attempt(call)
    assert stored is not None and stored.recording_location == location
