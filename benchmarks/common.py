"""What every benchmark records next to its numbers: the machine, and a JSON writer."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def hardware() -> dict[str, Any]:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "system": platform.system(),
    }


def write_result(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        # allow_nan=False: results hold metrics, and a NaN (an absent AUC) must fail loudly here.
        json.dumps({"benchmark": name, "hardware": hardware(), **payload}, indent=2, sort_keys=True,
                   allow_nan=False)  # fmt: skip
    )
    return path
