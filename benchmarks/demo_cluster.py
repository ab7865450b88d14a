"""`make demo-cluster` (a local standalone cluster + s3proxy, s3a:// warehouse) against `make demo`
(local[2] in one process, a local warehouse): each run once, one after the other, at one scale;
wall seconds of the make command and the demo's own seconds and per-stage seconds from the
report's summary.json. Both run on the same cores, so the ratio is what the cluster layout costs
on one machine (separate JVMs, executor start-up per stage, HTTP to the store), not a speed-up.

    python -m benchmarks.demo_cluster --scale default   # ~30 min on 2 cores

The load average before and after each run goes into the file: a busy machine slows both."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

ROOT = Path(__file__).resolve().parent.parent


def _newest_summary(reports: Path, after: float) -> dict[str, Any]:
    runs = [p for p in reports.glob("*/summary.json") if p.stat().st_mtime >= after]
    if not runs:
        raise SystemExit(f"no summary.json under {reports} written by this run")
    return dict(json.loads(max(runs, key=lambda p: p.stat().st_mtime).read_text()))


def run_demo(target: str, scale: str) -> dict[str, Any]:
    """`make <target> SCALE=<scale>`, timed; the demo's seconds and stage seconds from its summary."""
    load_before = os.getloadavg()[0]
    start_wall, start = time.time(), time.monotonic()
    out = subprocess.run(["make", "-s", target, f"SCALE={scale}"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"make {target} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    summary = _newest_summary(ROOT / "reports", start_wall)
    stages = {
        name: s["seconds"] for name, s in summary["stages"].items() if isinstance(s, dict) and "seconds" in s
    }
    return {
        "command": f"make {target} SCALE={scale}",
        "wall_seconds": round(seconds, 1),
        "demo_seconds": summary["seconds"],
        "stage_seconds": stages,
        "master": summary["config"].get("master"),
        "warehouse": summary["config"]["warehouse"],
        "requests": summary["counts"]["requests"],
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="default", help="the demo scale of both runs (default: %(default)s)")
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    local = run_demo("demo", args.scale)
    cluster = run_demo("demo-cluster", args.scale)
    payload = {
        "scale": args.scale,
        "local": local,
        "cluster": cluster,
        "ratio_cluster_over_local_wall": round(cluster["wall_seconds"] / local["wall_seconds"], 2),
        "note": args.note or "one run each",
    }
    path = write_result(f"demo-cluster-{args.scale}", payload, args.out)
    print(json.dumps({k: payload[k] for k in ("scale", "ratio_cluster_over_local_wall")}), path)
    return path


if __name__ == "__main__":
    main()
