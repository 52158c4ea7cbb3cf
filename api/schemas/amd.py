"""Answering-machine detection settings as the API takes them (campaigns and single calls alike)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

AmdMode = Literal["off", "detect", "detect_and_wait_for_beep"]
AmdAction = Literal["hangup", "leave_message", "worker"]
#: An http(s) URL the gateway fetches the message from, or "" (clears it in a PATCH).
AmdMessageUrl = Annotated[str, Field(max_length=2000, pattern=r"^(https?://[^\s]+)?$")]
