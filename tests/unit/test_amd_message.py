"""Answering-machine messages: the WAV check, the SSRF guard, one fetch per URL (real HTTP on loopback)."""

from __future__ import annotations

import io
import threading
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dialer.webhook_targets import WebhookTargets
from sip.amd_message import MessageCache, MessageRefused, check_wav
from sip.audio import tone


def wav_bytes(pcm: bytes, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


GOOD = wav_bytes(tone(600, 0.5))


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def listing(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def test_only_a_playable_wav_passes() -> None:
    check_wav(GOOD)
    check_wav(wav_bytes(tone(600, 0.5), rate=16000))
    for bad in (
        b"not a wav",
        wav_bytes(tone(600, 0.5), channels=2),
        wav_bytes(bytes(800), width=1),
        wav_bytes(tone(600, 0.5), rate=44100),
        wav_bytes(b""),
    ):
        with pytest.raises(MessageRefused):
            check_wav(bad)


class _Server(ThreadingHTTPServer):
    hits = 0
    body = GOOD


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    http = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield http
    http.shutdown()
    http.server_close()


async def test_a_message_is_fetched_once_and_kept(server: _Server, tmp_path: Path) -> None:
    cache = MessageCache(tmp_path, WebhookTargets(allow_private=True))
    url = f"http://127.0.0.1:{server.server_address[1]}/m.wav"
    first = await cache.path(url)
    assert first is not None and read(first) == GOOD
    assert await cache.path(url) == first
    assert server.hits == 1


async def test_a_private_address_is_never_fetched_unless_allowed(server: _Server, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/m.wav"
    assert await MessageCache(tmp_path).path(url) is None
    assert server.hits == 0


async def test_a_body_that_is_no_wav_is_refused_and_not_refetched_at_once(
    server: _Server, tmp_path: Path
) -> None:
    server.body = b"<html>not found</html>"
    cache = MessageCache(tmp_path, WebhookTargets(allow_private=True))
    url = f"http://127.0.0.1:{server.server_address[1]}/m.wav"
    assert await cache.path(url) is None
    assert await cache.path(url) is None
    assert server.hits == 1 and not listing(tmp_path)
