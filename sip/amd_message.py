"""The messages left on answering machines: fetched once from their URL, checked, kept in a folder.

A tenant names the URL and the gateway fetches it, so the webhook SSRF guard applies
(dialer/webhook_targets.py: no loopback or private address unless DIALER_WEBHOOK_ALLOW_PRIVATE), and
the request goes to the very address checked. The body must be a WAV pjsua can play: 16-bit PCM,
mono, 8 or 16 kHz, at most ``MAX_BYTES``. A URL that fails is tried again after ``RETRY_SECONDS``,
not on every call; meanwhile the call's machine is hung up on instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
import wave
from pathlib import Path

import httpx

from dialer.webhook_targets import TargetRefused, WebhookTargets

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024  # ~5 minutes at 8 kHz: longer is no voicemail message
FETCH_SECONDS = 10.0
RETRY_SECONDS = 60.0


class MessageRefused(ValueError):
    """The URL's body is not a WAV the gateway can play (or could not be fetched)."""


def check_wav(data: bytes) -> None:
    """MessageRefused unless ``data`` is a 16-bit PCM mono WAV at 8 or 16 kHz with some audio."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            shape = (wav.getsampwidth(), wav.getnchannels(), wav.getframerate(), wav.getcomptype())
            frames = wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise MessageRefused(f"not a WAV file: {exc}") from None
    if shape[0] != 2 or shape[1] != 1 or shape[2] not in (8000, 16000) or shape[3] != "NONE":
        raise MessageRefused("the WAV must be 16-bit PCM, mono, 8 or 16 kHz")
    if frames == 0:
        raise MessageRefused("the WAV holds no audio")


class MessageCache:
    """URL → local WAV path, each URL fetched once (concurrent calls wait for the same fetch)."""

    def __init__(self, folder: Path, targets: WebhookTargets | None = None) -> None:
        self.folder = folder
        self.targets = targets or WebhookTargets()
        self._locks: dict[str, asyncio.Lock] = {}
        self._failed: dict[str, float] = {}  # url → monotonic time of its last failure

    def _path(self, url: str) -> Path:
        return self.folder / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.wav"

    async def path(self, url: str) -> str | None:
        """The local file of ``url``'s message, fetching it the first time; None if it cannot be had."""
        path = self._path(url)
        if path.exists():
            return str(path)
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            if path.exists():
                return str(path)
            failed = self._failed.get(url)
            if failed is not None and time.monotonic() - failed < RETRY_SECONDS:
                return None
            try:
                data = await self._fetch(url)
                check_wav(data)
            except (TargetRefused, MessageRefused, httpx.HTTPError) as exc:
                self._failed[url] = time.monotonic()
                log.warning("answering-machine message not usable (%s): %s", type(exc).__name__, exc)
                return None
            await asyncio.to_thread(self._store, path, data)
            self._failed.pop(url, None)
            return str(path)

    def _store(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)  # whole or absent: a SIP worker never plays half a file

    async def _fetch(self, url: str) -> bytes:
        target = await self.targets.check(url)
        headers = {"Host": target.host_header}
        async with (
            httpx.AsyncClient(timeout=FETCH_SECONDS, follow_redirects=False) as client,
            client.stream(
                "GET", target.pinned_url(), headers=headers, extensions={"sni_hostname": target.host}
            ) as response,
        ):
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise MessageRefused(f"the message is over {MAX_BYTES} bytes")
                chunks.append(chunk)
        return b"".join(chunks)
