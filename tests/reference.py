"""A straightforward pure-Python statement of docs/design.md §3, to check the Spark pipelines against.

Slow and obvious on purpose: no state, no slicing tricks. A request's history is every valid
action of its user, on any day up to the request's, with event_ts < request_ts."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from pipelines.validity import (
    ACTION_REQUIRED,
    DUPLICATE,
    IMPRESSION_REQUIRED,
    INCONSISTENT_REQUEST,
    LABEL_NOT_BINARY,
    OUTSIDE_DATE,
    null_reason,
)
from schemas import IMPRESSIONS, USER_ACTIONS
from schemas.fields import HISTORY_SOURCE, LABEL_COLUMN_NAMES, TASKS
from schemas.request_samples import TARGET_SOURCE

Row = dict[str, Any]


def utc_day(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def _order_key(row: Row, columns: list[str], first: str | None = None) -> tuple[Any, ...]:
    ordered = ([first] if first else []) + [c for c in columns if c != first]
    return tuple((row[c] is None, row[c] if row[c] is not None else 0) for c in ordered)


def impression_reasons(rows: list[Row]) -> list[str | None]:
    reasons: list[str | None] = []
    for r in rows:
        reason = next((null_reason(c) for c in IMPRESSION_REQUIRED if r[c] is None), None)
        if reason is None and utc_day(r["request_ts"]) != r["date"]:
            reason = OUTSIDE_DATE
        if reason is None and any(r[t] not in (0, 1) for t in TASKS):
            reason = LABEL_NOT_BINARY
        reasons.append(reason)
    # canonical (user_id, request_ts) per request: most rows, then lowest position
    by_request: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if reasons[i] is None:
            by_request[r["request_id"]].append(i)
    for idx in by_request.values():
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i in idx:
            groups[(rows[i]["user_id"], rows[i]["request_ts"])].append(i)
        canon = min(groups, key=lambda k: (-len(groups[k]), min(rows[i]["position"] for i in groups[k]), k))
        for i in idx:
            if (rows[i]["user_id"], rows[i]["request_ts"]) != canon:
                reasons[i] = INCONSISTENT_REQUEST
    # duplicates of (request_id, item_id) among valid rows: lowest position kept
    dupes: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if reasons[i] is None:
            dupes[(r["request_id"], r["item_id"])].append(i)
    for idx in dupes.values():
        idx.sort(key=lambda i: _order_key(rows[i], IMPRESSIONS.column_names, first="position"))
        for i in idx[1:]:
            reasons[i] = DUPLICATE
    return reasons


def action_reasons(rows: list[Row]) -> list[str | None]:
    reasons: list[str | None] = []
    for r in rows:
        reason = next((null_reason(c) for c in ACTION_REQUIRED if r[c] is None), None)
        if reason is None and utc_day(r["event_ts"]) != r["date"]:
            reason = OUTSIDE_DATE
        reasons.append(reason)
    dupes: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if reasons[i] is None:
            dupes[tuple(r[k] for k in USER_ACTIONS.keys)].append(i)
    for idx in dupes.values():
        idx.sort(key=lambda i: _order_key(rows[i], USER_ACTIONS.column_names))
        for i in idx[1:]:
            reasons[i] = DUPLICATE
    return reasons


def valid_actions(actions: list[Row]) -> list[Row]:
    return [a for a, why in zip(actions, action_reasons(actions), strict=True) if why is None]


def history(valid: list[Row], user_id: int, before_ts: int, n: int) -> list[Row]:
    """The user's last n valid actions with event_ts < before_ts, oldest first."""
    events = [a for a in valid if a["user_id"] == user_id and a["event_ts"] < before_ts]
    return sorted(events, key=lambda a: (a["event_ts"], a["item_id"], a["action"]))[-n:]


def request_samples(impressions: list[Row], actions: list[Row], date: str, l_max: int) -> dict[str, Row]:
    """Expected request_samples rows of `date`, keyed by request_id."""
    imp_reasons = impression_reasons(impressions)
    valid = valid_actions(actions)
    targets: dict[str, list[Row]] = defaultdict(list)
    for r, why in zip(impressions, imp_reasons, strict=True):
        if why is None and r["date"] == date:
            targets[r["request_id"]].append(r)
    out: dict[str, Row] = {}
    for request_id, rows in targets.items():
        user, ts = rows[0]["user_id"], rows[0]["request_ts"]
        hist = history(valid, user, ts, l_max)
        rows = sorted(rows, key=lambda r: (r["position"], r["item_id"]))
        sample: Row = {"request_id": request_id, "user_id": user, "request_ts": ts, "date": date}
        sample["hist_len"] = len(hist)
        for name, src in HISTORY_SOURCE.items():
            sample[name] = [a[src] for a in hist]
        sample["num_targets"] = len(rows)
        for name, src in TARGET_SOURCE.items():
            sample[name] = [r[src] for r in rows]
        for name, task in zip(LABEL_COLUMN_NAMES, TASKS, strict=True):
            sample[name] = [r[task] for r in rows]
        out[request_id] = sample
    return out


def quarantine_counts(rows: list[Row], reasons: list[str | None]) -> Counter[tuple[str, str]]:
    """(date, reason) -> count of rejected rows."""
    return Counter((r["date"], why) for r, why in zip(rows, reasons, strict=True) if why is not None)
