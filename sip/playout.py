"""What a voice worker sent, waiting to be played into its call: PCM chunks and marks, in order.

The hub loop adds to it (``media``, ``mark``, ``clear`` from the worker); pjsua's clock thread takes one
20 ms frame per tick. A lock guards it, never held around a pjsua2 call.
"""

from __future__ import annotations

import threading
from collections import deque

from sip.audio import RATE

FRAME_BYTES = 2 * RATE * 20 // 1000  # 320: one 20 ms PCM frame


class Playout:
    """PCM the voice worker sent, waiting to be played into the call, with its marks; thread-safe.

    The clock thread takes one frame per tick (``next_frame``). A mark is reached when all audio
    queued before it has been handed to the call; ``clear`` drops the audio and returns the marks
    dropped with it (echoed at once, as Twilio does).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # never held around a pjsua2 call
        self._items: deque[bytes | str] = deque()  # PCM chunks and mark names, in order
        self._due: list[str] = []  # marks crossed inside the last frame: reached after it played

    def add_audio(self, pcm: bytes) -> None:
        if pcm:
            with self._lock:
                self._items.append(pcm)

    def add_mark(self, name: str) -> None:
        with self._lock:
            self._items.append(name)

    def clear(self) -> list[str]:
        with self._lock:
            marks = self._due + [item for item in self._items if isinstance(item, str)]
            self._items.clear()
            self._due = []
        return marks

    def queued(self) -> int:
        """PCM bytes waiting (for tests and metrics)."""
        with self._lock:
            return sum(len(item) for item in self._items if isinstance(item, bytes))

    def next_frame(self, size: int = FRAME_BYTES) -> tuple[bytes | None, list[str]]:
        """The next ``size`` bytes to play (None: nothing queued) and the marks reached by now."""
        with self._lock:
            items, reached = self._items, self._due
            self._due = []
            while items and isinstance(head := items[0], str):
                items.popleft()
                reached.append(head)  # the audio before it went out on an earlier tick
            if not items:
                return None, reached
            chunks: list[bytes] = []
            need = size
            while items and need:
                head = items.popleft()
                if isinstance(head, str):
                    self._due.append(head)
                elif len(head) <= need:
                    chunks.append(head)
                    need -= len(head)
                else:
                    chunks.append(head[:need])
                    items.appendleft(head[need:])
                    need = 0
        if need:
            chunks.append(bytes(need))  # the worker's audio ended mid-frame: pad with silence
        return b"".join(chunks), reached
