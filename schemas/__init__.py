"""Table contracts: the single source of truth for every table's schema (docs/design.md §3)."""

from __future__ import annotations

from .contract import Column, ContractError, DType, TableContract
from .impression_samples import IMPRESSION_SAMPLES
from .impressions import IMPRESSIONS
from .quarantine import QUARANTINE
from .request_samples import REQUEST_SAMPLES, REQUEST_SAMPLES_STAGING
from .request_samples_compact import REQUEST_SAMPLES_COMPACT
from .user_actions import USER_ACTIONS
from .user_day_samples import USER_DAY_SAMPLES, USER_DAY_SAMPLES_STAGING
from .user_history import USER_HISTORY
from .user_summaries import USER_SUMMARIES

ALL_TABLES: dict[str, TableContract] = {
    t.name: t
    for t in (
        IMPRESSIONS,
        USER_ACTIONS,
        USER_HISTORY,
        REQUEST_SAMPLES,
        REQUEST_SAMPLES_STAGING,
        IMPRESSION_SAMPLES,
        QUARANTINE,
        USER_SUMMARIES,
        REQUEST_SAMPLES_COMPACT,
        USER_DAY_SAMPLES,
        USER_DAY_SAMPLES_STAGING,
    )
}

DEFAULT_WAREHOUSE = "warehouse"

__all__ = [
    "ALL_TABLES",
    "DEFAULT_WAREHOUSE",
    "IMPRESSIONS",
    "IMPRESSION_SAMPLES",
    "QUARANTINE",
    "REQUEST_SAMPLES",
    "REQUEST_SAMPLES_COMPACT",
    "REQUEST_SAMPLES_STAGING",
    "USER_ACTIONS",
    "USER_DAY_SAMPLES",
    "USER_DAY_SAMPLES_STAGING",
    "USER_HISTORY",
    "USER_SUMMARIES",
    "Column",
    "ContractError",
    "DType",
    "TableContract",
]
