"""Voice workers that misbehave on purpose, for the bridge's abandonment and reconnect tests."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from sip.reference_worker import ReferenceWorker


class GatedWorker(ReferenceWorker):
    """The reference worker, answering the n-th WebSocket handshake only after ``delays[n]`` seconds
    (the last delay holds for every later one). It has taken the TCP connection and the HTTP upgrade
    request meanwhile: to the gateway it looks like a worker that is slow, or never answers."""

    def __init__(self, delays: list[float], **kwargs: object) -> None:
        super().__init__(greeting_seconds=0, echo=False, **kwargs)  # type: ignore[arg-type]
        self.delays = delays
        self.handshakes = 0  # upgrade requests received
        self._released = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await serve(
            self._serve, host, port, compression=None, process_request=self._gate, open_timeout=30
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self.url

    async def _gate(self, connection: ServerConnection, request: Request) -> Response | None:
        delay = self.delays[min(self.handshakes, len(self.delays) - 1)]
        self.handshakes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), delay)  # released early at stop()
        return None

    async def stop(self) -> None:
        self._released.set()
        await super().stop()
