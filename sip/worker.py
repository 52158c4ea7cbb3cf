"""A SIP worker process: one pjsua2 Endpoint driven by one SIP thread, commands on stdin, events on stdout.

Run as ``python -m sip.worker '<WorkerConfig JSON>'`` by the gateway's supervisor (see sip/protocol.py
for the wire format). The main thread only reads stdin into a queue; the SIP thread creates the library,
probes the call capacity, reports ``Ready`` and then loops: run queued commands, ``libHandleEvents``,
drop finished calls, enforce timers, write the events of that round in one write. End of stdin (the
gateway is gone) shuts the worker down like a ``Stop`` command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time

from dialer.logs import RedactingFilter
from sip.amd_media import AmdHeard
from sip.endpoint import Stack
from sip.inbound_policy import InboundPolicy
from sip.protocol import (
    AddTrunk,
    Answer,
    Command,
    Dial,
    Event,
    Failed,
    Hangup,
    InboundRefused,
    PlayFile,
    Ready,
    Recorded,
    RecordTo,
    Reject,
    SendDtmf,
    SetInboundPolicy,
    Stop,
    Transfer,
    TransferRefused,
    WorkerConfig,
    decode,
    encode,
    parse_config,
)
from sip.stream import StreamHub, StreamRequest

log = logging.getLogger("sip.worker")

# libHandleEvents timeout. It returns at once on any SIP packet or pjsip timer, and a command or a stream's
# request wakes it (``wake``), so the timeout only bounds the latency of our own timers (ring timeouts,
# deadlines, deferred media teardown): 20 ms while anything is going on. With nothing going on there is
# no timer of ours to run: a 5 ms poll cost an idle worker 2% of a core, 250 ms ~0.05%, 1 s ~0.01%.
POLL_MS = 20
IDLE_POLL_MS = 1000
REFUSED_REPORT_SECONDS = 0.5  # refusals by the inbound policy are reported at most this often (one line)


class Worker:
    """The SIP thread's loop around a ``Stack``."""

    def __init__(self, config: WorkerConfig, out_fd: int) -> None:
        self.config = config
        # Commands from stdin, and what the voice-worker streams ask (from the hub's loop thread).
        self.commands: queue.Queue[Command | StreamRequest | Recorded | AmdHeard] = queue.Queue()
        self._out_fd = out_fd
        self._outbox: list[bytes] = []
        self.hub = StreamHub(self.request)
        self.stack = Stack(config, self.emit, self.hub)
        # A recording merged on its own thread, and answering-machine verdicts from pjsua's clock thread,
        # report through here.
        self.stack.table.post = self.request
        self._waker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._wake_to = ("127.0.0.1" if config.host in ("", "0.0.0.0") else config.host, config.port)
        self._refused_at = 0.0
        self._idle_since: float | None = None  # monotonic time the worker last had nothing going on

    def wake(self) -> None:
        """End the SIP thread's ``libHandleEvents`` wait now (any thread): a bare CRLF keep-alive
        (RFC 5626) to the worker's own SIP UDP port, which pjsip drops silently."""
        with contextlib.suppress(OSError):
            self._waker.sendto(b"\r\n\r\n", self._wake_to)

    def request(self, item: Command | StreamRequest | Recorded | AmdHeard) -> None:
        """Queue a command or a stream's request for the SIP thread and wake it (any thread)."""
        self.commands.put(item)
        self.wake()

    def emit(self, event: Event) -> None:
        self._outbox.append(encode(event))

    def flush(self) -> None:
        if self._outbox:
            data = b"".join(self._outbox)
            self._outbox.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(self._out_fd, view) :]

    def pump(self) -> None:
        busy = self._busy()
        self._clock(busy)
        self.stack.ep.libHandleEvents(POLL_MS if busy else IDLE_POLL_MS)
        self.stack.table.reap()

    def _clock(self, busy: bool) -> None:
        """The bridge's clock (the null sound device) runs while anything is going on, and stops once
        nothing has been for ``clock_idle_seconds`` (not between two calls of a campaign); it starts
        again before the next call's media (docs/capacity.md)."""
        now = time.monotonic()
        if busy:
            self._idle_since = None
            self.stack.media_clock(True)
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self.config.clock_idle_seconds:
            self.stack.media_clock(False)

    def _busy(self) -> bool:
        """Whether a call, a transfer or SIP-URI worker leg, or ended media is around (timers may be due)."""
        stack = self.stack
        return bool(
            stack.table.calls
            or stack.table.probes
            or stack.table.media_pending()
            or stack.transfers.pending()
            or stack.workers.pending()
        )

    def run(self) -> None:
        """The SIP thread: everything pjsua2 happens here, from libCreate to libDestroy."""
        self.hub.start()
        self.stack.start()
        capacity = self.stack.probe(self.pump)
        self.stack.table.capacity = capacity  # a call to a SIP-URI worker needs two of these slots
        # Slots kept for human legs are no lines for calls: the gateway counts only the others.
        kept = self.stack.table.transfer_lines = max(0, min(self.config.transfer_lines, capacity - 1))
        self.emit(Ready(capacity - kept, os.getpid()))
        self.flush()
        while self._run_commands():
            self.flush()  # replies now, not after the next poll
            self.pump()
            self.stack.table.run_timers()
            self.stack.transfers.run_timers()
            self.stack.workers.run_timers()
            self.stack.table.reap()
            self._report_refused()
            self.flush()
        self.stack.shutdown(self.pump)
        self.flush()
        self.hub.stop()  # ended calls' streams send ``stop`` (bounded)

    def _report_refused(self) -> None:
        """One ``InboundRefused`` line for what the screen and the call table refused lately."""
        now = time.monotonic()
        if now < self._refused_at + REFUSED_REPORT_SECONDS:
            return
        counts = self.stack.screen.drain()
        for reason, count in self.stack.table.refused.items():
            counts[reason] = counts.get(reason, 0) + count
        self.stack.table.refused.clear()
        if counts:
            self.emit(InboundRefused(counts))
            self._refused_at = now

    def _run_commands(self) -> bool:
        """Run every queued command; False once ``Stop`` has come."""
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return True
            if isinstance(command, Stop):
                return False
            try:
                self._run(command)
            except Exception:  # a bug in one command must not take the other calls down
                log.exception("command %s failed", type(command).__name__)
                if isinstance(command, Dial):
                    self.emit(Failed(command.key, "internal error"))
            self.stack.table.reap()  # before the next command can reuse a freed slot

    def _run(self, command: Command | StreamRequest | Recorded | AmdHeard) -> None:
        table = self.stack.table
        if isinstance(command, Dial | Answer | Transfer):
            self.stack.media_clock(True)  # before the call's media can start
        if isinstance(command, Recorded):  # from a merge thread: out with the SIP thread's events
            self.emit(command)
        elif isinstance(command, StreamRequest):
            table.stream_request(command)
        elif isinstance(command, AmdHeard):
            table.amd_heard(command)
        elif isinstance(command, PlayFile | RecordTo | SendDtmf):
            table.play(command)
        elif isinstance(command, Dial):
            account = self.stack.accounts.get(command.trunk)
            if account is None:
                self.emit(Failed(command.key, "unknown trunk"))
            else:
                table.dial(command, account)
        elif isinstance(command, Hangup):
            table.hangup(command.key, command.reason)
        elif isinstance(command, Answer):
            table.answer(command)
        elif isinstance(command, Reject):
            table.reject(command)
        elif isinstance(command, AddTrunk):
            self.stack.add_trunk(command)
        elif isinstance(command, SetInboundPolicy):
            table.policy = InboundPolicy.build(command.networks, command.numbers)
        elif isinstance(command, Transfer):
            self.stack.transfers.start(command)
        elif isinstance(command, TransferRefused):
            self.stack.transfers.refused(command)


def _read_commands(worker: Worker) -> None:
    """The stdin thread: command lines into the queue, each waking the SIP thread (so a command waits
    for no poll timeout); never touches pjsua2."""
    for line in sys.stdin.buffer:
        try:
            command = decode(line)
        except ValueError:
            log.error("dropped a malformed command line")
            continue
        worker.request(command)
    worker.request(Stop())


def main() -> None:
    config = parse_config(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the gateway decides
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {config.name}: %(message)s"))
    logging.basicConfig(level=config.log_level, handlers=[handler])
    # Events go to the real stdout; pjsua prints to fd 1 before its log settings apply, so fd 1 → null.
    out_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    worker = Worker(config, out_fd)
    failure: list[BaseException] = []

    def sip_thread() -> None:
        try:
            worker.run()
        except BaseException as exc:
            failure.append(exc)
            log.exception("SIP thread failed")

    thread = threading.Thread(target=sip_thread, name="sip", daemon=True)
    thread.start()
    reader = threading.Thread(target=_read_commands, args=(worker,), name="stdin", daemon=True)
    reader.start()
    thread.join()
    # Skip interpreter teardown: pjsua2 objects must not be finalised after libDestroy.
    os._exit(1 if failure else 0)


if __name__ == "__main__":
    main()
