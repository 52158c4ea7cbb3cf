"""The outcome model: one place maps a SIP result to an outcome and says whether it may be retried."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How one dial attempt ended, as the retry policy and the reports see it."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    INVALID_NUMBER = "invalid_number"
    FAILED = "failed"
    CAPACITY = "capacity"
    TRANSFERRED = "transferred"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"


# Q.850 causes that mean "the network is congested", not "this person cannot be reached".
_CAPACITY_CAUSES = frozenset({34, 38, 41, 42, 44, 47})
# Q.850 causes that mean the number itself is wrong.
_INVALID_CAUSES = frozenset({1, 3, 22, 28})

#: Outcomes after which the prospect is never dialled again, whatever the policy says.
FINAL_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.INVALID_NUMBER, Outcome.REJECTED})

#: Final outcomes that mean the person was reached (the prospect is ``completed``, not ``failed``).
REACHED_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.TRANSFERRED})


def classify(sip_code: int | None, confirmed: bool, q850_cause: int | None = None) -> Outcome:
    """Map what the SIP stack reported at the end of a call to an outcome.

    ``confirmed`` says whether the dialog reached CONFIRMED (the callee answered): pjsua2 reports 200
    both for "answered, far end hung up" and "answered, we hung up", so the code alone cannot tell.
    """
    if confirmed:
        return Outcome.ANSWERED
    if sip_code is None or sip_code == 0:
        return Outcome.FAILED
    if q850_cause in _CAPACITY_CAUSES:
        return Outcome.CAPACITY
    if q850_cause in _INVALID_CAUSES:
        return Outcome.INVALID_NUMBER
    if sip_code in (486, 600):
        return Outcome.BUSY
    if sip_code in (408, 480, 487):
        # 480 with cause 19 ("no answer from user") or 18, 408 after ringing, our CANCEL at the timeout.
        return Outcome.NO_ANSWER
    if sip_code in (404, 410, 484, 485, 604):
        return Outcome.INVALID_NUMBER
    if sip_code in (603, 403, 607, 608):
        return Outcome.REJECTED
    if sip_code in (502, 503, 504):
        return Outcome.CAPACITY
    return Outcome.FAILED


def retry_bucket(outcome: Outcome) -> str | None:
    """The campaign retry setting that governs ``outcome`` (``failed``, ``busy``, ``no_answer``), or None.

    None means the outcome is never retried by policy: answered, transferred, invalid number, rejected
    (the callee declined: calling again is harassment).
    """
    if outcome is Outcome.BUSY:
        return "busy"
    if outcome in (Outcome.NO_ANSWER, Outcome.VOICEMAIL):
        # A machine answered: nobody was reached, so it is retried like a ring-out.
        return "no_answer"
    if outcome in (Outcome.FAILED, Outcome.CAPACITY, Outcome.UNKNOWN):
        return "failed"
    return None


def is_retryable(outcome: Outcome) -> bool:
    """Whether a campaign's retry policy may ever schedule another attempt after ``outcome``."""
    return retry_bucket(outcome) is not None
