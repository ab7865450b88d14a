"""What every job's command line shares: the warehouse and date arguments, logging, the summary."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from schemas import DEFAULT_WAREHOUSE
from schemas.constants import iso_date


def date_arg(text: str) -> str:
    """argparse type for a UTC day (schemas.constants.iso_date); rejects anything but YYYY-MM-DD."""
    try:
        return iso_date(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def previous_day(date: str, days: int = 1) -> str:
    """The day `days` before `date` (YYYY-MM-DD)."""
    return (dt.date.fromisoformat(date) - dt.timedelta(days=days)).isoformat()


def job_parser(prog: str, doc: str | None, with_date: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--warehouse", default=DEFAULT_WAREHOUSE, help="warehouse root, a path or URI (default: %(default)s)"
    )
    if with_date:
        p.add_argument("--date", required=True, type=date_arg, help="the UTC day to process, YYYY-MM-DD")
    return p


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Yields a dict whose 'seconds' is set when the block ends."""
    out = {"seconds": 0.0}
    start = time.monotonic()
    try:
        yield out
    finally:
        out["seconds"] = time.monotonic() - start
