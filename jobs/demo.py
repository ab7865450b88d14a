"""The main job end to end on the embedded default (local Spark, Delta tables under warehouse/).

Runs every stage that exists so far and says what it did."""

from __future__ import annotations

import argparse
import logging
import time

from jobs import init_warehouse
from schemas import DEFAULT_WAREHOUSE

log = logging.getLogger("demo")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="demo", description=__doc__)
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE, help="warehouse root (path or URI)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    versions = init_warehouse.main(["--warehouse", args.warehouse])
    print(f"demo: stage 1/1 init_warehouse: {len(versions)} Delta tables ready under {args.warehouse}/")
    for name, version in versions.items():
        print(f"  {name:<20} version {version}")
    print(f"demo: done in {time.monotonic() - start:.1f}s")


if __name__ == "__main__":
    main()
