"""Opt-outs during a call: the callee asks never to be called again, by voice or by a keypad digit.

The voice worker says so with its ``opt_out`` event; or the callee presses the campaign's
``opt_out_digit`` (RFC 2833). Either way the callee's number goes on the tenant's do-not-call list,
which at once stops every later attempt to it in every campaign of the tenant (``store.opt_out``) and
is told to the tenant (``prospect.opted_out`` webhook). The call itself goes on: what to say is the
worker's business. The SIP side only reports what happened (sip/events.py); the decision is here, so
SIP worker processes never need the database.
"""

from __future__ import annotations

import logging
from uuid import UUID

from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.storage import AttemptRecord, SqlStore
from dialer.webhooks import WebhookEmitter

log = logging.getLogger(__name__)

BY_WORKER = "the voice worker reported an opt-out"
BY_DIGIT = "the callee pressed the opt-out digit"


class OptOuts:
    """Turns the opt-out signals of live calls into do-not-call entries."""

    def __init__(self, store: SqlStore, webhooks: WebhookEmitter) -> None:
        self.store = store
        self.webhooks = webhooks

    async def worker_asked(self, call_id: UUID) -> bool:
        """The call's voice worker sent ``opt_out``; False when the call or its number is unknown."""
        attempt = await self.store.get_attempt(call_id)
        return attempt is not None and await self._opt_out(attempt, BY_WORKER)

    async def digit_pressed(self, call_id: UUID, digit: str) -> bool:
        """The far end pressed ``digit``: an opt-out if it is the campaign's opt-out digit."""
        attempt = await self.store.get_attempt(call_id)
        if attempt is None or attempt.campaign_id is None:
            return False  # only campaigns have an opt-out digit
        campaign = await self.store.get_campaign(attempt.campaign_id)
        if campaign is None or campaign.spec.opt_out_digit != digit:
            return False
        return await self._opt_out(attempt, BY_DIGIT)

    async def _opt_out(self, attempt: AttemptRecord, how: str) -> bool:
        phone = await self._callee(attempt)
        if phone is None:
            log.warning("call %s: opt-out ignored, the callee's number is not known", attempt.id)
            return False
        stopped = await self.store.opt_out(attempt.tenant_id, phone, f"opted out during a call: {how}")
        self.webhooks.prospect_opted_out(attempt.tenant_id, phone, attempt.id, stopped)
        log.info("call %s: %s; %d waiting prospect(s) stopped", attempt.id, how, stopped)
        return True

    async def _callee(self, attempt: AttemptRecord) -> str | None:
        """The number that opted out: who was called, or who called us (as E.164, None if unusable)."""
        raw = attempt.from_number if attempt.direction == "inbound" else attempt.to_number
        if not raw:
            return None
        try:
            return parse_phone(raw, await self.store.tenant_region(attempt.tenant_id))
        except InvalidPhoneNumber:
            return None
