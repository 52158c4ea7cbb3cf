"""Finished call recordings: kept in the data folder or an S3 bucket, put on the call record, announced by
webhook, deleted once older than their tenant's retention.

The SIP worker process writes the WAV (sip/recorder.py) into ``RecordingStorage.folder``; the gateway
reports it (``RecordingMade``) and ``Recordings.made`` keeps it: uploaded to S3 when a bucket is
configured (then removed from the folder), else left where it is. ``purge`` is the retention job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from config.settings import Settings
from dialer.s3 import S3Client, S3Config, S3Error
from dialer.storage.recordings import RecordingAdmin
from dialer.webhooks import CALL_RECORDING_READY, WebhookEmitter
from sip.events import RecordingMade

log = logging.getLogger(__name__)

PURGE_BATCH = 500  # recordings deleted per pass; the job runs again at its next interval


def recording_url(base: str, call_id: UUID) -> str:
    """Where the API serves a call's recording (``GET /calls/{id}/recording``, the tenant's key)."""
    return f"{base.rstrip('/')}/calls/{call_id}/recording"


class RecordingStorage:
    """The local folder the SIP workers write into, and the S3 bucket recordings move to (if any)."""

    def __init__(self, folder: Path, s3: S3Client | None = None) -> None:
        self.folder = folder.resolve()
        self.s3 = s3

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingStorage:
        s3 = None
        if settings.s3_bucket:
            config = S3Config(
                endpoint=settings.s3_endpoint or f"https://s3.{settings.s3_region}.amazonaws.com",
                bucket=settings.s3_bucket,
                access_key=settings.s3_access_key or "",
                secret_key=settings.s3_secret_key or "",
                region=settings.s3_region,
            )
            s3 = S3Client(config)
        return cls(settings.recordings_path(), s3)

    async def keep(self, made: RecordingMade) -> str:
        """Where the finished WAV is kept from now on: ``s3://bucket/key``, or its local path when no
        bucket is configured or the upload failed (the next start does not retry it: see the docs)."""
        path = Path(made.path)
        if self.s3 is None:
            return str(path)
        key = f"recordings/{made.tenant_id}/{made.call_id}.wav"
        try:
            await asyncio.to_thread(self.s3.put_file, key, path)
        except (S3Error, OSError) as exc:
            log.warning("call %s: recording kept locally, upload failed: %s", made.call_id, exc)
            return str(path)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, path)
        return self.s3.location(key)

    async def delete(self, location: str) -> None:
        """Remove a kept recording (gone already: fine); S3Error/OSError when it could not be removed."""
        if location.startswith("s3://"):
            key = self.s3.key_of(location) if self.s3 is not None else None
            if self.s3 is None or key is None:
                raise S3Error(0, "the recording's bucket is not configured here")
            await asyncio.to_thread(self.s3.delete, key)
            return
        path = self._local(location)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, path)

    async def open(self, location: str) -> AsyncIterator[bytes] | None:
        """The recording's bytes, or None when it is not here (deleted, or on another node's disk).

        The first chunk is read before returning, so a missing S3 object is None, not a broken stream."""
        if location.startswith("s3://"):
            key = self.s3.key_of(location) if self.s3 is not None else None
            if self.s3 is None or key is None:
                return None
            chunks = self.s3.stream(key)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = b""
            except S3Error as exc:
                if exc.status == 404:
                    return None
                raise
            return _prepend(first, chunks)
        path = self._local(location)
        if path is None or not await asyncio.to_thread(path.is_file):
            return None
        return _file_chunks(path)

    def _local(self, location: str) -> Path | None:
        """A local location, only inside the recordings folder (a row never points us elsewhere)."""
        path = Path(location).resolve()
        return path if path.is_relative_to(self.folder) else None


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def _file_chunks(path: Path, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as data:
        while chunk := await asyncio.to_thread(data.read, size):
            yield chunk


class Recordings:
    """Keeps finished recordings, records them on their call and tells the tenant; runs the retention."""

    def __init__(
        self,
        store: RecordingAdmin,
        storage: RecordingStorage,
        webhooks: WebhookEmitter | None,
        public_url: str,
    ) -> None:
        self.store = store
        self.storage = storage
        self.webhooks = webhooks
        self.public_url = public_url
        self._tasks: set[asyncio.Task[None]] = set()

    def made(self, event: RecordingMade) -> None:
        """The gateway's ``on_recording``: keep it in the background (an upload must not hold the loop)."""
        self._spawn(self.keep(event))

    async def keep(self, event: RecordingMade) -> str | None:
        """Store the recording and mark the call; its location, or None when there is nothing to keep."""
        if event.error or not event.path:
            log.warning("call %s: no recording: %s", event.call_id, event.error or "no file")
            return None
        location = await self.storage.keep(event)
        made_at = datetime.now(UTC)
        if not await self.store.record_recording(event.call_id, location, made_at, round(event.seconds, 2)):
            log.warning("call %s: recording made for a call with no record: deleted", event.call_id)
            await self.storage.delete(location)
            return None
        if self.webhooks is not None:
            data = {
                "call_id": str(event.call_id),
                "recording_url": recording_url(self.public_url, event.call_id),
                "duration_seconds": round(event.seconds, 2),
                "channels": {"left": "callee", "right": "voice worker"},
                "content_type": "audio/wav",
            }
            self.webhooks.emit(CALL_RECORDING_READY, data, tenant_id=event.tenant_id)
        log.info("call %s: recording kept (%.1f s)", event.call_id, event.seconds)
        return location

    async def purge(self, now: datetime | None = None) -> int:
        """Delete recordings older than their tenant's retention; how many were deleted. One that cannot
        be deleted now (S3 down) keeps its location and is tried again at the next pass."""
        now = now or datetime.now(UTC)
        deleted = 0
        for recording in await self.store.expired_recordings(now, PURGE_BATCH):
            try:
                await self.storage.delete(recording.location)
            except (S3Error, OSError) as exc:
                log.warning("call %s: expired recording not deleted yet: %s", recording.call_id, exc)
                continue
            if await self.store.forget_recording(recording.call_id, recording.location, now):
                deleted += 1
        if deleted:
            log.info("retention: %d recordings deleted", deleted)
        return deleted

    async def stop(self) -> None:
        """Let recordings being kept finish (bounded)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("keeping a recording failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
