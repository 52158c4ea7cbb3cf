"""The demo's closing summary (ASR, ACD, PDD, outcomes, retries, transfers) from the attempts table."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.table import Table

from dialer.outcome import Outcome
from dialer.storage import AttemptRecord

REACHED = (Outcome.ANSWERED, Outcome.TRANSFERRED)
HANDED_OVER = ("completed", "bridged")  # a transfer_result saying the human has the callee


@dataclass(frozen=True)
class Summary:
    """A finished campaign in the figures a carrier or an ops team reads first."""

    attempts: int
    seized: int  # INVITEs that left (attempts refused before sending are not seizures)
    answered: int
    acd_seconds: float | None  # mean talk time of answered calls
    pdd_mean_seconds: float | None  # INVITE to first 18x
    pdd_p95_seconds: float | None
    outcomes: Mapping[str, int]
    retries: int  # attempts after a prospect's first
    transfers: int  # calls handed to a human (REFER completed or legs bridged)
    transfers_asked: int  # calls whose voice worker (or the API) asked for a transfer, however it went
    transfers_by: Mapping[str, int]  # transfers that reached the human, by method: refer, bridge
    prospects: Mapping[str, int]

    @property
    def asr(self) -> float | None:
        """Answer-seizure ratio: answered calls over INVITEs sent."""
        return self.answered / self.seized if self.seized else None


def p95(values: Sequence[float]) -> float | None:
    """The nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summarize(attempts: Sequence[AttemptRecord], prospects: Mapping[str, int]) -> Summary:
    """The summary of a campaign's attempts and its prospects by state."""
    ended = [a for a in attempts if a.outcome is not None]
    seized = [a for a in ended if a.invited_at is not None or a.sip_code is not None]
    answered = [a for a in ended if a.outcome in REACHED]
    talk = [a.duration_seconds for a in answered if a.duration_seconds is not None]
    pdd = [a.pdd_ms / 1000 for a in ended if a.pdd_ms is not None]
    return Summary(
        attempts=len(attempts),
        seized=len(seized),
        answered=len(answered),
        acd_seconds=sum(talk) / len(talk) if talk else None,
        pdd_mean_seconds=sum(pdd) / len(pdd) if pdd else None,
        pdd_p95_seconds=p95(pdd),
        outcomes=dict(Counter(a.outcome.value for a in ended if a.outcome is not None)),
        retries=sum(1 for a in attempts if a.attempt_number > 1),
        transfers=sum(1 for a in ended if a.outcome is Outcome.TRANSFERRED),
        transfers_asked=sum(1 for a in ended if a.outcome is Outcome.TRANSFERRED or a.transfer_result),
        transfers_by=dict(
            Counter(a.transfer_method or "?" for a in ended if a.transfer_result in HANDED_OVER)
        ),
        prospects=dict(prospects),
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def render_summary(summary: Summary, elapsed: float) -> Table:
    """The summary as one two-column table (plain enough to read in a CI log)."""
    table = Table(title=f"demo summary ({elapsed:.0f} s)", show_header=False, min_width=40)
    asr = "-" if summary.asr is None else f"{summary.asr:.0%}"
    table.add_row("ASR", f"{asr} ({summary.answered} answered / {summary.seized} seized)")
    table.add_row("ACD", _seconds(summary.acd_seconds))
    table.add_row("PDD mean", _seconds(summary.pdd_mean_seconds))
    table.add_row("PDD p95", _seconds(summary.pdd_p95_seconds))
    table.add_section()
    table.add_row("attempts", str(summary.attempts))
    for outcome in Outcome:
        if summary.outcomes.get(outcome.value):
            table.add_row(f"  {outcome.value}", str(summary.outcomes[outcome.value]))
    table.add_row("retries", str(summary.retries))
    by = ", ".join(f"{method} {count}" for method, count in sorted(summary.transfers_by.items()))
    table.add_row("transfers", f"{summary.transfers} of {summary.transfers_asked} asked for ({by or 'none'})")
    table.add_section()
    for state, count in summary.prospects.items():
        if count:
            table.add_row(f"prospects {state}", str(count))
    return table
