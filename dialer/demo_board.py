"""The demo's live view: what the dispatch loop and the SIP events say, drawn as a Rich table or a line.

It shows prospect names and DID labels, never a phone number. Outcomes and prospect states go by the
names the API, the metrics and the summary use (dialer/outcome.py, the prospect states).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from uuid import UUID

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from dialer.dispatch import end_outcome
from dialer.outcome import Outcome
from dialer.ports import CallAnswered, CallEnded, CallEvent, CallRequest, CallRinging, DispatchObserver

DIALLING, RINGING, TALKING = "dialling", "ringing", "talking"
# The outcomes the table always lists (others appear once they happen), in the API's names.
SHOWN = (Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.REJECTED)
LINES_LEGEND = "# a call holds a line, . a free line; in use/cap, cap = the DID's max_concurrent_calls"


@dataclass
class LiveCall:
    """A call the board has seen placed and not yet ended."""

    name: str
    attempt: int
    did: str
    state: str = DIALLING


@dataclass
class Snapshot:
    """What the board last read from the store and the coordinator (polled, not pushed)."""

    campaign_status: str = "draft"
    prospects: dict[str, int] = field(default_factory=dict)
    retry_scheduled: int = 0
    lines: list[tuple[str, int, int]] = field(default_factory=list)  # DID label, in use, cap
    window_open: bool | None = None
    window_text: str = ""


class Board(DispatchObserver):
    """Hears the dispatcher and the call events the launcher reports (``Runtime.add_observer``)."""

    def __init__(self, did_labels: dict[str, str], total: int) -> None:
        self.did_labels = did_labels  # DID number -> label: numbers stay in memory, labels are shown
        self.total = total
        self.live: dict[UUID, LiveCall] = {}
        self.outcomes: Counter[str] = Counter()
        self.recent: deque[str] = deque(maxlen=6)
        self.placed_count = 0
        self.window_blocked = 0
        self.snapshot = Snapshot()
        self.started = time.monotonic()
        self._early: dict[UUID, list[CallEvent]] = {}  # events that overtook placed()

    # ---- DispatchObserver ------------------------------------------------------------------------

    def deferred(self, campaign_id: UUID, reason: str) -> None:
        self.window_blocked += 1

    def placed(self, request: CallRequest, lag_seconds: float) -> None:
        self.placed_count += 1
        call = LiveCall(
            request.prospect_name or "someone",
            request.attempt_number or 1,
            self.did_labels.get(request.from_number, "DID"),
        )
        self.live[request.attempt_id] = call
        for event in self._early.pop(request.attempt_id, []):
            self.on_event(event)

    # ---- call events -----------------------------------------------------------------------------

    def on_event(self, event: CallEvent) -> None:
        """A launcher event; the launcher may report before the dispatcher has said it placed the call."""
        call = self.live.get(event.attempt_id)
        if call is None:
            self._early.setdefault(event.attempt_id, []).append(event)
            return
        if isinstance(event, CallRinging) and call.state == DIALLING:
            call.state = RINGING
        elif isinstance(event, CallAnswered):
            call.state = TALKING
        elif isinstance(event, CallEnded):
            del self.live[event.attempt_id]
            outcome = end_outcome(event).value
            self.outcomes[outcome] += 1
            self.recent.appendleft(f"{call.name} (attempt {call.attempt}): {outcome}")

    # ---- drawing ---------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def in_state(self, state: str) -> int:
        return sum(1 for call in self.live.values() if call.state == state)

    def line(self) -> str:
        """One plain progress line, for logs and terminals that are not a TTY."""
        snap = self.snapshot
        completed, failed = snap.prospects.get("completed", 0), snap.prospects.get("failed", 0)
        lines = ", ".join(f"{label} {used}/{cap}" for label, used, cap in snap.lines)
        ended = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
        return (
            f"[{self.elapsed():5.1f}s] dialling {self.in_state(DIALLING)}, ringing {self.in_state(RINGING)}, "
            f"talking {self.in_state(TALKING)} | ended: {ended or 'none yet'} | retry scheduled "
            f"{snap.retry_scheduled} | prospects completed {completed}, failed {failed} of {self.total} | "
            f"lines in use/cap {lines} | window "
            f"{_window_word(snap.window_open)}"
        )

    def render(self) -> RenderableType:
        """The live table: calls now, outcomes so far, prospects, lines per DID, window, last calls."""
        snap = self.snapshot
        now = Table(title="calls now", show_header=False)
        for state in (DIALLING, RINGING, TALKING):
            now.add_row(state, str(self.in_state(state)))
        now.add_row("placed so far", str(self.placed_count))

        ended = Table(title="attempts by outcome", show_header=False)
        for outcome in SHOWN:
            ended.add_row(outcome.value, str(self.outcomes[outcome.value]))
        for name, count in sorted(self.outcomes.items()):
            if name not in SHOWN:
                ended.add_row(name, str(count))

        people = Table(title=f"prospects ({self.total})", show_header=False)
        first = snap.prospects.get("pending", 0) - snap.retry_scheduled
        people.add_row("pending: first call", str(max(0, first)))
        people.add_row("pending: retry scheduled", str(snap.retry_scheduled))
        for state in ("dialing", "completed", "failed"):
            people.add_row(state, str(snap.prospects.get(state, 0)))

        lines = Table(title="lines in use per DID", show_header=False)
        for label, used, cap in snap.lines:
            lines.add_row(label, f"{'#' * used}{'.' * max(0, cap - used)}", f"{used}/{cap}")

        if not snap.lines:
            lines.add_row("(starting)", "", "")
        header = Text.assemble(
            ("dialer demo", "bold"),
            f"  {self.elapsed():5.1f}s  campaign {snap.campaign_status}  window ",
            (_window_word(snap.window_open), "green" if snap.window_open else "red"),
            f"  {snap.window_text}",
        )
        recent = Text("\n".join(self.recent) or "no call has ended yet", style="dim")
        return Group(
            header,
            Columns([now, ended, people, lines], padding=(0, 2)),
            Text(f"lines per DID: {LINES_LEGEND}", style="dim"),
            Text("last calls:", style="bold"),
            recent,
        )


def _window_word(is_open: bool | None) -> str:
    return "?" if is_open is None else "open" if is_open else "closed"
