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

#: The attempt's reason when the trunk's host did not resolve at dial time (no INVITE left).
UNRESOLVED_HOST = "trunk host does not resolve"
# How pjsip words a failed name lookup in the local 502 it ends such a call with: its own PJ_ERESOLVE
# ("gethostbyname() has returned error (PJ_ERESOLVE)", measured: docs/pjsua2.md) and, were a DNS
# resolver configured, pjlib-util's DNS errors (PJLIB_UTIL_EDNS_NXDOMAIN and the like).
_RESOLVE_ERRORS = ("PJ_ERESOLVE", "gethostbyname()", "PJLIB_UTIL_EDNS")

#: Outcomes after which the prospect is never dialled again, whatever the policy says.
FINAL_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.INVALID_NUMBER, Outcome.REJECTED})

#: Final outcomes that mean the person was reached (the prospect is ``completed``, not ``failed``).
REACHED_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.TRANSFERRED})


def unresolved_host(sip_code: int | None, reason: str | None) -> bool:
    """Whether the SIP stack ended the call itself because the trunk's host did not resolve.

    pjsua2 reports it as a 502 of its own, before any INVITE leaves: not the carrier's answer, so
    not ``capacity`` (a congested network), but a fault of the trunk's configuration or of DNS.
    """
    return sip_code == 502 and reason is not None and any(marker in reason for marker in _RESOLVE_ERRORS)


def classify(
    sip_code: int | None, confirmed: bool, q850_cause: int | None = None, reason: str | None = None
) -> Outcome:
    """Map what the SIP stack reported at the end of a call to an outcome.

    ``confirmed`` says whether the dialog reached CONFIRMED (the callee answered): pjsua2 reports 200
    both for "answered, far end hung up" and "answered, we hung up", so the code alone cannot tell.
    ``reason`` (the status text) tells a local 502 for an unresolvable trunk host from a carrier's.
    """
    if confirmed:
        return Outcome.ANSWERED
    if sip_code is None or sip_code == 0:
        return Outcome.FAILED
    if unresolved_host(sip_code, reason):
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


def end_reason(sip_code: int | None, reason: str | None) -> str | None:
    """The reason an attempt keeps: the SIP stack's text, or ours where ``classify`` gave it its own."""
    return UNRESOLVED_HOST if unresolved_host(sip_code, reason) else reason


def retry_bucket(outcome: Outcome) -> str | None:
    """The campaign retry setting that governs ``outcome`` (``failed``, ``busy``, ``no_answer``,
    ``voicemail``), or None.

    None means the outcome is never retried by policy: answered, transferred, invalid number, rejected
    (the callee declined: calling again is harassment).
    """
    if outcome is Outcome.BUSY:
        return "busy"
    if outcome is Outcome.NO_ANSWER:
        return "no_answer"
    if outcome is Outcome.VOICEMAIL:
        # A machine answered (sip/amd.py): nobody was reached; its own flag, maximum and delay.
        return "voicemail"
    if outcome in (Outcome.FAILED, Outcome.CAPACITY, Outcome.UNKNOWN):
        return "failed"
    return None


def answered_outcome(answered_by: str | None) -> Outcome:
    """An answered call's outcome by the answering-machine detector's verdict (None: it did not run)."""
    if answered_by is not None and (answered_by.startswith("machine") or answered_by == "fax"):
        return Outcome.VOICEMAIL
    return Outcome.ANSWERED


def is_retryable(outcome: Outcome) -> bool:
    """Whether a campaign's retry policy may ever schedule another attempt after ``outcome``."""
    return retry_bucket(outcome) is not None
