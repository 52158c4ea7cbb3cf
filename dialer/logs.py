"""Logging set-up: text or JSON lines, with phone-number-shaped digits masked as a last line of defence."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

# Code must not log phone numbers at all; this mask catches the slip (E.164 or national, 7+ digits).
_PHONE_SHAPE = re.compile(r"(?<![\w-])\+?\d[\d ().-]{5,}\d(?![\w-])")


# Digit runs that are not numbers: dotted IPv4 addresses and ISO dates (as in "2026-11-23 12:15").
_NOT_A_PHONE = re.compile(r"\d{1,3}(\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}\b.*")


def _mask(match: re.Match[str]) -> str:
    shape = match.group(0)
    if _NOT_A_PHONE.fullmatch(shape) or sum(c.isdigit() for c in shape) < 7:
        return shape
    return "[phone]"


def redact(text: str) -> str:
    """``text`` with anything shaped like a phone number replaced by ``[phone]``."""
    return _PHONE_SHAPE.sub(_mask, text)


class RedactingFilter(logging.Filter):
    """Masks phone-number-shaped digits in the rendered message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` ids."""

    _extras = ("call_id", "attempt_id", "campaign_id", "request_id", "tenant_id")

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self._extras:
            if hasattr(record, name):
                body[name] = str(getattr(record, name))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, from Settings."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty at INFO: alembic lists its plugins at every start, APScheduler logs every 5 s job run.
    for name in ("alembic", "apscheduler"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
