"""The SIP worker processes: start them, route each call to a free slot, restart the ones that die."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dialer.ports import LauncherFull
from sip.protocol import (
    Command,
    Dial,
    Ended,
    Event,
    Failed,
    Full,
    Offered,
    Ready,
    Stop,
    WorkerConfig,
    config_arg,
    decode,
    encode,
)

log = logging.getLogger(__name__)

REPLY_SECONDS = 5.0  # a worker that does not answer a Dial within this is hung: it is killed
STOP_SECONDS = 5.0
RESTART_DELAYS = (0.2, 1.0, 5.0, 30.0)  # back-off between restarts of a worker that keeps dying
STABLE_SECONDS = 60.0  # a worker that ran this long before dying is restarted without back-off
PACING_SECONDS = 2.0  # longest a call waits for a worker's media sockets before LauncherFull
_ROOT = str(Path(__file__).resolve().parent.parent)  # so the child finds `sip` and `dialer`


class GatewayError(RuntimeError):
    """The SIP side could not place the call (bad trunk account, worker not running); nothing was sent."""


class WorkerProcess:
    """One worker child process, its pipe, and the keys of the calls it holds."""

    def __init__(self, config: WorkerConfig, on_event: Callable[[WorkerProcess, Event], None]) -> None:
        self.config = config
        self.name = config.name
        self.capacity = 0  # 0 while not running
        self.calls: set[int] = set()
        self.restarts = 0  # in a row: reset once a restarted worker has run for STABLE_SECONDS
        self.started_at = 0.0
        self.paused_until = 0.0  # monotonic time before which the worker has said it cannot dial
        self._on_event = on_event
        self._proc: asyncio.subprocess.Process | None = None
        self._replies: dict[int, asyncio.Future[Event | None]] = {}
        self._reader: asyncio.Task[int | None] | None = None

    @property
    def pid(self) -> int | None:
        """The process id while the process runs."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def free(self) -> int:
        return self.capacity - len(self.calls) if self.capacity else 0

    async def start(self, ready_within: float) -> asyncio.Task[int | None]:
        """Spawn the process and wait for ``Ready``; returns the task that ends with its exit code."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sip.worker", config_arg(self.config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        self._proc = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), ready_within)
            ready = decode(line) if line else None
        except TimeoutError:
            self.kill()
            ready = None
        except ValueError:
            ready = None
        if not isinstance(ready, Ready):
            await self._reap(proc)
            raise GatewayError(f"SIP worker {self.name} did not start (port {self.config.port})")
        self.capacity, self.started_at = ready.capacity, time.monotonic()
        self._reader = asyncio.create_task(self._read(proc), name=f"{self.name}-reader")
        return self._reader

    async def _read(self, proc: asyncio.subprocess.Process) -> int | None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                event = decode(line)
            except ValueError:
                log.error("%s sent a malformed line", self.name)
                continue
            self._dispatch(event)
        self.capacity = 0
        for future in self._replies.values():  # the call may or may not have left: reported as lost
            if not future.done():
                future.set_result(None)
        self._replies.clear()
        return await self._reap(proc)

    def _dispatch(self, event: Event) -> None:
        key = getattr(event, "key", None)
        if isinstance(event, Offered):
            self.calls.add(event.key)
        elif isinstance(event, Full | Failed | Ended) and key is not None:
            self.calls.discard(key)
        future = self._replies.pop(key, None) if key is not None else None
        if future is not None and not future.done():
            future.set_result(event)  # Placed, Full, Failed, or an event showing the call is out
        if not isinstance(event, Full | Failed):
            self._on_event(self, event)

    async def _reap(self, proc: asyncio.subprocess.Process) -> int:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            # Not kill() straight away: Popen.send_signal() reaps an exiting child itself, and the
            # asyncio child watcher then finds no such child ("Unknown child process").
            return await asyncio.wait_for(proc.wait(), STOP_SECONDS)
        except TimeoutError:
            self.kill()
            return await proc.wait()

    def send(self, command: Command) -> None:
        """Queue a command; lost silently if the process is gone (its exit reports its calls)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        proc.stdin.write(encode(command))

    async def request(self, command: Dial) -> Event | None:
        """Send a Dial and wait for its reply; None when the worker died or hung meanwhile."""
        future: asyncio.Future[Event | None] = asyncio.get_running_loop().create_future()
        self._replies[command.key] = future
        self.calls.add(command.key)
        self.send(command)
        try:
            return await asyncio.wait_for(asyncio.shield(future), REPLY_SECONDS)
        except TimeoutError:
            log.error("%s did not answer a dial within %.0f s: killing it", self.name, REPLY_SECONDS)
            self.kill()
            return await future

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def stop(self) -> None:
        """Ask for the clean shutdown; kill after ``STOP_SECONDS``."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self.send(Stop())
        # No running reader when a restart was cancelled before Ready: then wait for the exit itself.
        reader = self._reader if self._reader is not None and not self._reader.done() else None
        try:
            await asyncio.wait_for(asyncio.shield(reader) if reader else proc.wait(), STOP_SECONDS)
        except TimeoutError:
            log.error("%s did not stop within %.0f s: killing it", self.name, STOP_SECONDS)
            self.kill()
            await (reader or proc.wait())


class Supervisor:
    """Starts the workers, picks one with a free slot per call, restarts a worker that dies.

    ``on_lost(worker, keys)`` reports the calls a dead worker held; they are never retried here.
    ``on_ready(worker)`` runs after every (re)start, e.g. to re-create registering trunk accounts.
    """

    def __init__(
        self,
        configs: list[WorkerConfig],
        on_event: Callable[[WorkerProcess, Event], None],
        on_lost: Callable[[WorkerProcess, set[int]], None],
        on_ready: Callable[[WorkerProcess], None],
        start_timeout: float = 20.0,
    ) -> None:
        self.workers = [WorkerProcess(config, on_event) for config in configs]
        self._on_lost = on_lost
        self._on_ready = on_ready
        self._start_timeout = start_timeout
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def capacity(self) -> int:
        return sum(worker.capacity for worker in self.workers)

    async def start(self) -> None:
        results = await asyncio.gather(*(self._launch(w) for w in self.workers), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]
        log.info(
            "SIP gateway up: %d workers, capacity %d (%s)",
            len(self.workers),
            self.capacity(),
            ", ".join(f"{w.name}={w.capacity}" for w in self.workers),
        )

    async def _launch(self, worker: WorkerProcess) -> None:
        reader = await worker.start(self._start_timeout)
        self._on_ready(worker)
        self._watchers[worker.name] = asyncio.create_task(
            self._watch(worker, reader), name=f"{worker.name}-watch"
        )

    async def _watch(self, worker: WorkerProcess, reader: asyncio.Task[int | None]) -> None:
        code = await asyncio.shield(reader)  # cancelling the watcher must not stop the reading
        if self._stopping:
            return
        log.error("%s died (exit %s) holding %d calls", worker.name, code, len(worker.calls))
        self._report_lost(worker)
        if time.monotonic() - worker.started_at > STABLE_SECONDS:
            worker.restarts = 0
        await asyncio.sleep(RESTART_DELAYS[min(worker.restarts, len(RESTART_DELAYS) - 1)])
        worker.restarts += 1
        while not self._stopping:
            try:
                await self._launch(worker)
            except GatewayError:
                log.exception("restart of %s failed", worker.name)
                await asyncio.sleep(RESTART_DELAYS[-1])
                continue
            log.warning("%s restarted (pid %s); capacity %d", worker.name, worker.pid, self.capacity())
            return

    def pick(self, tried: list[WorkerProcess]) -> WorkerProcess | None:
        """The running, unpaused worker with the most free slots, not yet tried for this call."""
        now = time.monotonic()
        free = [w for w in self.workers if w not in tried and w.free() > 0 and w.paused_until <= now]
        return max(free, key=lambda w: w.free(), default=None)

    async def dial(self, command: Dial, prepare: Callable[[WorkerProcess], None]) -> WorkerProcess:
        """Hand a call to a worker with a free slot; LauncherFull when none could take it.

        A worker whose media sockets are still being released says when it can take a call again;
        the call then waits for the first such worker (at most ``PACING_SECONDS`` in all).
        """
        deadline = time.monotonic() + PACING_SECONDS
        tried: list[WorkerProcess] = []
        while True:
            worker = self.pick(tried)
            if worker is None:
                paused = [w.paused_until for w in self.workers if w.free() > 0 and w not in tried]
                if not paused or min(paused) > deadline:
                    raise LauncherFull()
                await asyncio.sleep(max(0.0, min(paused) - time.monotonic()))
                continue
            prepare(worker)
            reply = await worker.request(command)
            if isinstance(reply, Full):
                if reply.retry_in:
                    worker.paused_until = time.monotonic() + reply.retry_in
                else:  # slots held by calls pjsua still winds down (Timer B)
                    tried.append(worker)
                continue
            if isinstance(reply, Failed):
                raise GatewayError(reply.message)
            return worker

    def _report_lost(self, worker: WorkerProcess) -> None:
        lost, worker.calls = set(worker.calls), set()
        if lost:
            self._on_lost(worker, lost)

    async def stop(self) -> None:
        """Stop every worker cleanly; calls they could not report ending are reported as lost."""
        self._stopping = True
        for watcher in self._watchers.values():
            watcher.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        await asyncio.gather(*(self._stop_worker(w) for w in self.workers))

    async def _stop_worker(self, worker: WorkerProcess) -> None:
        await worker.stop()
        self._report_lost(worker)
