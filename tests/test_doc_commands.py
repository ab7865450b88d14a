"""The commands the manual shows work as typed in a plain shell, not only under `make`.

A fenced block right after the line `<!-- clean-shell -->` in README.md or docs/*.md is run here
as one bash script from the repository root, under `env -i HOME=<tmp> PATH=/usr/bin:/bin`: no
PYSPARK_PYTHON, no virtual environment on PATH, nothing `make` exports. The one change made to
the text: paths under `/tmp/` go to this test's own temporary folder, so runs never share a
folder. Every tagged block runs in `make test` (tag only commands of seconds)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
TAG = "<!-- clean-shell -->"
_TAGGED = re.compile(re.escape(TAG) + r"\s*\n```(?:bash|sh)\n(.*?)^```", re.S | re.M)


def tagged_blocks(text: str) -> list[str]:
    """The shell blocks of a page that follow the tag line."""
    return _TAGGED.findall(text)


def _unique_blocks() -> list[tuple[Path, int, str]]:
    """(page, index on the page, block); a block shown on two pages runs once."""
    seen: set[str] = set()
    out = []
    for page in DOCS:
        for i, block in enumerate(tagged_blocks(page.read_text())):
            if block not in seen:
                seen.add(block)
                out.append((page, i, block))
    return out


BLOCKS = _unique_blocks()
PAGES_WITH_BLOCKS = {page.name for page in DOCS if tagged_blocks(page.read_text())}


def clean_shell(script: str, home: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    """`script` in bash -e from the repository root, with an empty environment but HOME and PATH."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        ["/bin/bash", "-e", "-o", "pipefail", "-c", script],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_the_manual_tags_commands_for_this_test() -> None:
    assert {"README.md", "cluster.md"} <= PAGES_WITH_BLOCKS, f"tagged blocks only in {PAGES_WITH_BLOCKS}"
    assert tagged_blocks(f"x\n{TAG}\n```bash\necho a \\\n  b\n```\n```bash\nnot tagged\n```\n") == [
        "echo a \\\n  b\n"
    ]


@pytest.mark.spark
@pytest.mark.parametrize(("page", "index", "block"), BLOCKS, ids=[f"{p.name}-{i}" for p, i, _ in BLOCKS])
def test_tagged_command_runs_in_a_clean_shell(page: Path, index: int, block: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = re.sub(r"(?<![\w.])/tmp/", f"{tmp_path}/", block)
    out = clean_shell(script, home)
    assert out.returncode == 0, (
        f"{page.name} block {index} failed in a clean shell (exit {out.returncode}):\n{block}\n"
        f"--- stderr (end) ---\n{out.stderr[-3000:]}"
    )


def test_spark_submit_wrapper_without_the_project_interpreter_says_what_to_do(tmp_path: Path) -> None:
    out = clean_shell(f"RLB_PROJECT_PYTHON={tmp_path}/none scripts/spark-submit --version", tmp_path)
    assert out.returncode == 2
    assert "no project interpreter" in out.stderr and "make setup" in out.stderr
