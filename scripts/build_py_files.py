"""Zips the project's packages for `spark-submit --py-files` (the DAG's spark_py_files param).

Only the .py sources go in (no __pycache__), in sorted order, so the zip is the same for the same
sources. Python's zipfile instead of the `zip` tool: a fresh machine may not have the tool.

    python scripts/build_py_files.py dist/rlb-pipeline.zip \
        schemas pipelines jobs storage loader trainer synthetic
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def build(out: Path, packages: list[str]) -> int:
    """Writes `out` with every .py file under `packages`; returns the number of files."""
    files = sorted(p for pkg in packages for p in Path(pkg).rglob("*.py") if "__pycache__" not in p.parts)
    if not files:
        raise SystemExit(f"no .py files under {packages} (run from the repository root)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.as_posix())
    tmp.replace(out)
    return len(files)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if len(sys.argv) > 1 else 2)
    print(f"{sys.argv[1]}: {build(Path(sys.argv[1]), sys.argv[2:])} files")
