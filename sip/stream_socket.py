"""The WebSocket of one call's voice-worker stream, with less Python per message than websockets' defaults.

A streamed call exchanges ~100 messages a second with its worker (50 ``media`` each way, plus marks), and
websockets' asyncio connection spends most of a SIP worker's CPU on them: every received message goes
through its assembler and a future that wakes the reading task, every sent one through an async
context manager and a socket write of its own. Here, through websockets' documented hooks and its
Sans-I/O protocol object:

- ``StreamConnection`` (the ``create_connection`` factory of ``connect``) hands each received data
  message to ``on_message`` as its frame is parsed, on the loop, without the assembler; the owner
  waits for ``wait_closed()`` instead of iterating. Control frames (ping, pong, close) and the opening
  handshake still go through websockets.
- ``send_now`` frames every message of a batch and writes them with one socket write, while the
  connection is open and keeps up; otherwise it says so, and the caller sends the
  normal way (``await ws.send``), which waits for buffer space and reports a closed connection.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

WRITE_BUFFER_LIMIT = 64 * 1024  # past this the socket is not keeping up: fall back to flow-controlled sends


class StreamConnection(ClientConnection):
    """A client connection whose data messages go to ``on_message`` (bytes: UTF-8 text or binary)."""

    on_message: Callable[[bytes], None] | None = None
    _fragments: list[bytes] | None = None

    @classmethod
    def handing_to(cls, on_message: Callable[[bytes], None]) -> type[StreamConnection]:
        """The class to give ``connect(create_connection=...)``: its connections hand messages to
        ``on_message`` from the first frame after the handshake on."""
        return type(cls.__name__, (cls,), {"on_message": staticmethod(on_message)})

    def process_event(self, event: object) -> None:
        handler = self.on_message
        if handler is None or not isinstance(event, Frame):  # the handshake, or nobody listening
            super().process_event(event)  # type: ignore[arg-type]
            return
        opcode = event.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if event.fin:
                handler(bytes(event.data))
            else:
                self._fragments = [bytes(event.data)]
        elif opcode is Opcode.CONT:
            if self._fragments is not None:
                self._fragments.append(bytes(event.data))
                if event.fin:
                    message, self._fragments = b"".join(self._fragments), None
                    handler(message)
        else:
            super().process_event(event)  # ping, pong, close


def send_now(ws: ClientConnection, texts: list[str]) -> bool:
    """Frame ``texts`` and write them in one socket write; False (nothing sent) if the connection is not
    open or its write buffer is past WRITE_BUFFER_LIMIT: the caller then sends them with ``await ws.send``."""
    protocol, transport = ws.protocol, ws.transport
    if protocol.state is not State.OPEN or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
        return False
    for text in texts:
        protocol.send_text(text.encode())
    chunks = protocol.data_to_send()
    if all(chunks):
        transport.write(b"".join(chunks))
    else:  # an empty chunk asks for a half-close: websockets' own writer knows how
        ws.send_data()
    return True
