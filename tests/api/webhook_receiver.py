"""A webhook receiver for tests: a real HTTP server on loopback that verifies every signature."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.api.conftest import serve


@dataclass
class Received:
    """One POST as the receiver saw it, with its own verdict on the signature."""

    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """Answers with ``statuses`` in turn (the last one repeats); ``hang`` holds every request."""

    secret: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def verified(self, header: str, body: bytes) -> bool:
        """The receiver's own check, written independently of the sender's code."""
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        expected = hmac.new(self.secret.encode(), parts.get("t", "").encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(
            Received(dict(request.headers), body, self.verified(request.headers.get("x-signature", ""), body))
        )
        if self.hang:
            # Longer than any sender timeout in these tests; released when the receiver shuts down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), timeout=30)
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        return Response(status_code=status)

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.event["type"] == kind]


async def run_receiver(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    async for base in serve(app):
        receiver.url = f"{base}/hook"
        try:
            yield receiver
        finally:
            receiver.release.set()


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 10.0) -> None:
    """Wait (bounded) until ``check`` holds; fails the test with a timeout otherwise."""
    for _ in range(int(within / 0.02)):
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")
