"""The ports the dialing brain talks through; adapters live in dialer/storage, dialer/coordination, sip/."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from dialer.domain import (
    AmdSettings,
    AttemptResult,
    CampaignPlan,
    CampaignStatus,
    NewAttempt,
    OpenAttempt,
    Prospect,
    ProspectUpdate,
)

# --------------------------------------------------------------------------------------------------
# Coordination: leases over counted slots, CPS buckets, leadership, presence and queues. In-process or Redis.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A counted resource: at most ``capacity`` live leases may hold it (e.g. ``did:<uuid>``, cap 2)."""

    resource: str
    capacity: int


@dataclass(frozen=True)
class Lease:
    """A held set of slots with a fencing token; it frees itself at ``expires_at`` unless renewed.

    ``token`` grows monotonically across the whole store, so a node whose lease expired and was
    replaced can be recognised as stale by anyone comparing tokens.
    """

    holder: str
    resources: tuple[str, ...]
    token: int
    expires_at: float  # coordination-store clock, seconds


class Coordinator(ABC):
    """Leases with TTL and fencing tokens, token buckets for calls-per-second, leadership, and
    presence plus message queues between nodes."""

    @abstractmethod
    async def acquire(self, slots: Sequence[Slot], holder: str, ttl: float) -> Lease | None:
        """Take one unit of every slot at once, or nothing (None) when any is full."""

    @abstractmethod
    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend a live lease; None when it has already expired or been released (it is lost)."""

    @abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the slots back; releasing a lost or released lease is a no-op."""

    @abstractmethod
    async def in_use(self, resource: str) -> int:
        """Live (unexpired) leases currently holding ``resource``."""

    @abstractmethod
    async def is_current(self, lease: Lease) -> bool:
        """Whether ``lease`` is still held: the fence a node checks before acting on it."""

    @abstractmethod
    async def holds(self, resource: str, token: int) -> bool:
        """Whether a live lease with fencing token ``token`` holds ``resource``, whoever its holder.

        Reconciliation asks this of an attempt row (which stores its lease token): while the
        lease lives, some node still has the call up, so the attempt is not lost.
        """

    @abstractmethod
    async def take_token(self, bucket: str, rate: float, burst: int) -> float:
        """Take one token from a bucket refilled at ``rate``/s up to ``burst``.

        Returns 0.0 when a token was taken, else the seconds to wait before one is available
        (nothing is taken then).
        """

    @abstractmethod
    async def lead(self, name: str, holder: str, ttl: float) -> bool:
        """Become or stay leader of ``name`` for ``ttl`` seconds; False when another holder leads."""

    @abstractmethod
    async def resign(self, name: str, holder: str) -> None:
        """Give up leadership of ``name`` if ``holder`` has it."""

    # ---- between nodes: who is alive, and messages (how API nodes reach gateway nodes) ------------

    @abstractmethod
    async def announce(self, group: str, member: str, ttl: float) -> None:
        """List ``member`` in ``group`` for ``ttl`` seconds; announcing again extends it."""

    @abstractmethod
    async def withdraw(self, group: str, member: str) -> None:
        """Take ``member`` out of ``group`` now (a clean shutdown); a no-op when it is not listed."""

    @abstractmethod
    async def members(self, group: str) -> list[str]:
        """The members of ``group`` whose last announcement has not expired, sorted."""

    @abstractmethod
    async def push(self, queue: str, message: str, ttl: float) -> None:
        """Append ``message`` to ``queue``; a message nobody has popped within ``ttl`` s is dropped."""

    @abstractmethod
    async def pop(self, queues: Sequence[str], wait: float) -> tuple[str, str] | None:
        """Take the oldest live message of the first non-empty queue in ``queues`` as (queue, message),
        waiting up to ``wait`` seconds for one (0: do not wait); None when none came.

        A message is never handed to two callers, however many nodes pop the same queue (one whose
        caller dies mid-pop is lost, not redelivered: the asker's deadline covers that).
        """

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Free connections."""


# --------------------------------------------------------------------------------------------------
# Storage: what the dispatch loop reads and writes. SQL (SQLite/PostgreSQL) adapter in dialer/storage.
# --------------------------------------------------------------------------------------------------


class StorageUnavailable(Exception):
    """The database cannot be reached right now (down, restarting, network); the same write may
    succeed later. Raised by every store method in place of the driver's connection errors."""


class DialStore(ABC):
    """Persistent truth for dialling: campaigns, due prospects, attempts."""

    @abstractmethod
    async def active_campaign_ids(self) -> list[UUID]:
        """Campaigns whose status is ``active``."""

    @abstractmethod
    async def campaign_plan(self, campaign_id: UUID) -> CampaignPlan | None:
        """The campaign's settings, DIDs and trunks; None if it does not exist."""

    @abstractmethod
    async def due_prospects(self, campaign_id: UUID, now: datetime, limit: int) -> list[Prospect]:
        """Up to ``limit`` pending prospects with ``next_attempt_at <= now``, oldest due first.

        Never prospects in flight, terminal, or on the tenant's do-not-call list. Index-bound.
        """

    @abstractmethod
    async def defer_prospect(
        self, prospect_id: UUID, until: datetime | None, reason: str, *, hold: bool = False
    ) -> None:
        """Move a pending prospect's next attempt to ``until`` (window closed), or hold it."""

    @abstractmethod
    async def claim_attempt(self, attempt: NewAttempt, now: datetime) -> bool:
        """Atomically mark the prospect ``dialing`` and insert the attempt row (status ``dialing``).

        False (and nothing written) when the prospect is no longer pending and due: another
        dispatcher claimed it, it was paused, removed or put on the do-not-call list meanwhile.
        """

    @abstractmethod
    async def finish_attempt(
        self, attempt_id: UUID, result: AttemptResult, update: ProspectUpdate | None
    ) -> bool:
        """Record the attempt's end and apply the policy's decision to its prospect (None: a call
        outside any campaign, which has no prospect).

        Idempotent: False when the attempt had already ended (nothing changed).
        """

    @abstractmethod
    async def call_progress(
        self, attempt_id: UUID, *, ringing_at: datetime | None = None, answered_at: datetime | None = None
    ) -> bool:
        """Record that a live call rang (status ``ringing``) or was answered (``in-progress``), when it
        happens, so the call shows as live while it lasts. A call already ended is left as it is
        (False): a late event never reopens it."""

    @abstractmethod
    async def open_attempts(self, campaign_id: UUID | None = None) -> list[OpenAttempt]:
        """Attempts still ``dialing`` (not ended), with their prospects: the reconciliation input."""

    @abstractmethod
    async def dials_since(self, tenant_id: UUID, phone: str, since: datetime) -> list[datetime]:
        """When the tenant's attempts to ``phone`` started since ``since`` (frequency caps)."""

    @abstractmethod
    async def did_dials_since(self, did_id: UUID, since: datetime) -> int:
        """How many attempts used the DID as caller ID since ``since`` (daily caps)."""

    @abstractmethod
    async def set_campaign_status(
        self, campaign_id: UUID, status: CampaignStatus, *, expect: Sequence[CampaignStatus] | None = None
    ) -> bool:
        """Change a campaign's status, only from one of ``expect`` when given; False if it was not."""

    @abstractmethod
    async def campaign_exhausted(self, campaign_id: UUID) -> bool:
        """True when no prospect of the campaign can ever be dialled again (all terminal or held)."""


# --------------------------------------------------------------------------------------------------
# Calls: the launcher places calls and reports typed events. The real one is sip/; tests use fakes.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallRequest:
    """What the launcher needs to place one outbound call (``campaign_id`` None: a single API call)."""

    attempt_id: UUID
    tenant_id: UUID
    campaign_id: UUID | None
    trunk_id: UUID
    from_number: str
    to_number: str
    timeout_seconds: int
    lease_token: int
    agent_id: UUID | None = None
    # What a voice worker is told about the call (its ``start`` customParameters); all optional.
    prospect_id: UUID | None = None
    prospect_name: str | None = None
    attempt_number: int | None = None
    custom: Mapping[str, Any] | None = None  # the prospect's custom data
    record: bool = False  # record the callee and the voice worker (docs/recordings.md)
    amd: AmdSettings | None = None  # answering-machine detection (None: off)


@dataclass(frozen=True)
class CallRinging:
    """The far end sent its first 18x; ``pdd_ms`` is INVITE→18x."""

    attempt_id: UUID
    at: datetime
    pdd_ms: float | None = None


@dataclass(frozen=True)
class CallAnswered:
    """The call reached CONFIRMED."""

    attempt_id: UUID
    at: datetime


@dataclass(frozen=True)
class CallEnded:
    """The call is over; what the SIP stack reported, before outcome classification."""

    attempt_id: UUID
    at: datetime
    sip_code: int | None
    reason: str | None
    confirmed: bool
    q850_cause: int | None = None
    invited_at: datetime | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    transferred: bool = False
    worker: str | None = None
    lost: bool = False  # the SIP stack lost the call (its worker died): the outcome is ``unknown``
    answered_by: str | None = None  # the answering-machine detector's last verdict, if it ran
    amd_seconds: float | None = None  # from the answer to the first verdict


CallEvent = CallRinging | CallAnswered | CallEnded


class CallLauncher(ABC):
    """Places outbound calls; reports progress through the ``on_event`` callback it was given."""

    def __init__(self) -> None:
        self.on_event: Callable[[CallEvent], None] = lambda event: None

    @abstractmethod
    async def place(self, request: CallRequest) -> None:
        """Start dialling; returns once the call is handed to the SIP stack.

        Raises ``LauncherFull`` when no line is free (nothing was sent), or ``LaunchRefused`` when
        the destination may not be called from this trunk (nothing was sent).
        """

    @abstractmethod
    async def hangup(self, attempt_id: UUID) -> None:
        """End a live call (no-op if it already ended)."""

    @abstractmethod
    def capacity(self) -> int:
        """How many calls this launcher can hold at once."""

    @abstractmethod
    def live_attempts(self) -> set[UUID]:
        """Attempts with a call still up (used to reconcile after a crash)."""


class DispatchObserver:
    """Hears what the dispatch loop decides (metrics, the demo's table); each method is a no-op here."""

    def deferred(self, campaign_id: UUID, reason: str) -> None:
        """A due prospect was not dialled: the calling window is closed for ``reason``."""

    def placed(self, request: CallRequest, lag_seconds: float) -> None:
        """A call was handed to the launcher ``lag_seconds`` after the prospect became due."""

    def lease_lost(self, campaign_id: UUID) -> None:
        """A live call lost its cap lease and is being hung up."""

    def campaign_completed(self, campaign_id: UUID) -> None:
        """The campaign ran out of prospects to dial and was marked ``completed``."""


T = TypeVar("T")


class ObservingLauncher(CallLauncher, Generic[T]):
    """A CallLauncher that watches the calls passing through it (metrics, webhooks), then forwards.

    ``remember(request)`` keeps what the watcher needs of a call (before the INVITE: events may come
    before place() returns); ``observe(kept, event)`` sees each of the call's events; the call is
    forgotten at its end or when placing it fails. Events of other calls pass straight through.
    """

    def __init__(self, inner: CallLauncher) -> None:
        super().__init__()
        self.inner = inner
        self._calls: dict[UUID, T] = {}
        inner.on_event = self._seen

    @abstractmethod
    def remember(self, request: CallRequest) -> T:
        """What to keep about a call being placed."""

    @abstractmethod
    def observe(self, kept: T, event: CallEvent) -> None:
        """One event of a call placed through this launcher."""

    def placed(self, kept: T) -> None:
        """The call was handed to the SIP stack."""

    async def place(self, request: CallRequest) -> None:
        kept = self._calls[request.attempt_id] = self.remember(request)
        try:
            await self.inner.place(request)
        except BaseException:
            self._calls.pop(request.attempt_id, None)
            raise
        self.placed(kept)

    async def hangup(self, attempt_id: UUID) -> None:
        await self.inner.hangup(attempt_id)

    def capacity(self) -> int:
        return self.inner.capacity()

    def live_attempts(self) -> set[UUID]:
        return self.inner.live_attempts()

    def _seen(self, event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            kept = self._calls.pop(event.attempt_id, None)
        else:
            kept = self._calls.get(event.attempt_id)
        if kept is not None:
            self.observe(kept, event)
        self.on_event(event)


class LauncherFull(Exception):
    """No SIP line is free; the attempt was not sent."""


class LaunchRefused(Exception):
    """The call may not be placed (destination country or number type not allowed); nothing was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
