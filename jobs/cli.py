"""What every job's command line shares: the warehouse and date arguments, logging, the summary."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from schemas import DEFAULT_WAREHOUSE
from schemas.constants import iso_date

_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")


def date_arg(text: str) -> str:
    """argparse type for a UTC day (schemas.constants.iso_date); rejects anything but YYYY-MM-DD,
    including the 20260103 and 2026-W01-6 forms Python 3.11's date.fromisoformat accepts."""
    try:
        if not _DATE_SHAPE.fullmatch(text):
            raise ValueError(text)
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


# Errors a person fixes from the message alone: the command line prints it as one line, no traceback.
# Anything else (a bug) keeps its traceback.
_JOB_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,  # MissingTableError, InputFileError: the message names the table or file
    ValueError,  # ContractError, StateOrderError, bad --l-max
    RuntimeError,  # ConservationError, ConcurrentRunError, InjectedFault
)


def exit_on_job_error(job: str, main: Callable[[list[str]], object], argv: list[str]) -> None:
    """Runs a job's `main(argv)` from `python -m`/spark-submit; a job error (a missing input, a
    contract, a lost commit race) becomes one line `<job>: error: <message>` on stderr and exit
    status 1, instead of hundreds of lines of Py4J trace that bury what to do. Py4J's own errors
    are RuntimeErrors too but not ours: they keep their traceback."""
    try:
        main(argv)
    except _JOB_ERRORS as e:
        if type(e).__module__.startswith(("py4j", "pyspark")):
            raise
        message = " ".join(str(e).split())
        notes = " ".join(getattr(e, "__notes__", []))
        print(f"{job}: error: {message}{' (' + notes + ')' if notes else ''}", file=sys.stderr, flush=True)
        sys.exit(1)
