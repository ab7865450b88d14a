"""The manual stays true to the repository: the generated benchmarks page is current, every link and
every backticked repository path in README.md and docs/*.md exists, and no file cites the old
design document's name. Fast: no Spark, no torch."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks.results_page import check, render

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])

# Created at run time (by make, the demo, the trainer or the tests), so absent from a fresh clone.
RUNTIME_PREFIXES = (
    "warehouse/", "reports/", "runs/", ".venv/", ".venv-airflow/", ".cache/", "spark-warehouse/",
    "dist/", "build/",
)  # fmt: skip
# The old design document's name, spelled so that this file does not contain it.
OLD_DESIGN_DOC = "DESIGN" + ".md"

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
# A repository path: starts with a letter, "_" or ".", segments of word characters, dots and
# dashes (a "*" for globs), at least one "/"; a trailing "/" marks a folder.
_PATH = re.compile(r"^[A-Za-z_.][\w.\-]*(/[\w.\-*]+)+/?$|^[A-Za-z_.][\w.\-]*/$")
_ENV_VAR = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (commands and diagrams, not references)."""
    return _FENCE.sub("", path.read_text())


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text())):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _repository_paths(text: str) -> list[str]:
    """Backticked tokens that name a repository path (runtime folders, placeholders, URLs, paths
    outside the checkout and environment-variable folders left out)."""
    out = []
    for token in _INLINE_CODE.findall(text):
        token = token.strip()
        if not _PATH.match(token) or token.startswith((*RUNTIME_PREFIXES, "../")):
            continue
        if _ENV_VAR.match(token.split("/")[0]):
            continue
        out.append(token)
    return out


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_benchmarks_page_is_current() -> None:
    problem = check()
    assert problem is None, problem


def test_results_page_lists_a_file_without_a_spec_and_check_sees_a_stale_page(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    payload = {"benchmark": "new_bench", "hardware": {"cpus": 4}, "args": {"n": 1}, "out": {"rate": 12.5}}
    (results / "new_bench.json").write_text(json.dumps(payload))
    page = render(results)
    assert "## new_bench (`new_bench.json`)" in page
    assert "| `out.rate` | 12.5 |" in page and "args.n" not in page
    assert "Hardware: cpus: 4." in page
    stale = tmp_path / "benchmarks.md"
    stale.write_text(page.replace("12.5", "13.0"))
    assert "not current" in (check(results, stale) or "")
    stale.write_text(page)
    assert check(results, stale) is None


@pytest.mark.parametrize("page", DOCS, ids=_rel)
def test_doc_links_resolve(page: Path) -> None:
    missing = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            missing.append(f"{target} (no {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            missing.append(f"{target} (no heading #{anchor} in {_rel(dest)})")
    assert not missing, f"{_rel(page)}: broken links: {missing}"


@pytest.mark.parametrize("page", DOCS, ids=_rel)
def test_doc_backticked_paths_exist(page: Path) -> None:
    missing = []
    for token in _repository_paths(_prose(page)):
        if "*" in token:
            if not list(REPO.glob(token)):
                missing.append(token)
        elif not (REPO / token).exists():
            missing.append(token)
    assert not missing, f"{_rel(page)}: paths that do not exist in the repository: {missing}"


def test_repository_path_detection() -> None:
    text = (
        "`jobs/cli.py` `docs/` `benchmarks/results/*.json` `warehouse/x` `.venv/bin/python` "
        "`jobs/<step>.py` `../shared/data` `/tmp/ml` `s3a://b/k` `4/15` `SPARK_CONF_DIR/spark-defaults.conf` "
        "`u.data` `python -m demo` `tgt_*/label_*`"
    )
    assert _repository_paths(text) == ["jobs/cli.py", "docs/", "benchmarks/results/*.json"]


def test_no_file_mentions_the_old_design_doc() -> None:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    offenders = []
    for name in sorted({n for n in listed.decode().split("\0") if n}):
        path = REPO / name
        if path.is_file() and OLD_DESIGN_DOC.encode() in path.read_bytes():
            offenders.append(name)
    assert not offenders, f"files citing {OLD_DESIGN_DOC} (the design doc is docs/design.md): {offenders}"
