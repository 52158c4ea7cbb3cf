"""SQL storage adapter (SQLite or PostgreSQL): ``SqlStore`` implements ``dialer.ports.DialStore``."""

from dialer.storage.records import (
    ApiKeyRecord,
    AttemptRecord,
    CampaignRecord,
    CampaignSpec,
    Conflict,
    NumberRecord,
    TrunkRecord,
    TrunkSpec,
)
from dialer.storage.sql import SqlStore

__all__ = [
    "ApiKeyRecord",
    "AttemptRecord",
    "CampaignRecord",
    "CampaignSpec",
    "Conflict",
    "NumberRecord",
    "SqlStore",
    "TrunkRecord",
    "TrunkSpec",
]
