"""Run by test_port_pool.py in a process of its own (pjsua asserts would take pytest down with it).

Two pooled stream ports talk to each other in pjsua's conference bridge, are taken apart and given
back, ``cycles`` times while the clock thread runs; then the pool is disowned and pjsua destroyed.
Prints one JSON line of what it saw.
"""

from __future__ import annotations

import json
import sys
import time

import pjsua2 as pj

from sip.media import PortPool
from sip.playout import Playout


class Session:
    """What a StreamPort asks of a StreamSession: counts the frames it is fed."""

    def __init__(self) -> None:
        self.playout = Playout()
        self.frames = 0

    def feed(self, pcm: bytes) -> None:
        self.frames += 1

    def marks_played(self, names: list[str]) -> None:
        pass


def main(cycles: int) -> None:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
    ep.libInit(cfg)
    ep.libStart()
    ep.audDevManager().setNullDev()  # the conference bridge's clock thread ticks every 20 ms
    pool = PortPool()
    fed, after_return, reused = [], [], 0
    seen: set[int] = set()
    for _ in range(cycles):
        a, b = Session(), Session()
        port_a, port_b = pool.take(a), pool.take(b)  # type: ignore[arg-type]
        reused += sum(id(port) in seen for port in (port_a, port_b))
        seen.update((id(port_a), id(port_b)))
        port_a.startTransmit(port_b)
        port_b.startTransmit(port_a)
        time.sleep(0.06)  # three ticks
        port_a.stopTransmit(port_b)
        port_b.stopTransmit(port_a)
        pool.give_back(port_a)
        pool.give_back(port_b)
        fed.append(min(a.frames, b.frames))
        counts = a.frames + b.frames
        time.sleep(0.04)
        after_return.append(a.frames + b.frames - counts)
    pool.disown()
    ports = len(pool.ports)
    ep.libDestroy()
    print(json.dumps({"ports": ports, "reused": reused, "fed": fed, "after_return": after_return}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
