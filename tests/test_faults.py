"""Fault injection on build_request_samples: kill -9 at named points (jobs/faults.py), a failed
output write after the quarantine write, two concurrent runs of one date, damaged or drifted
inputs, leftover part files. After each: the previous version is intact (Delta and the loader's
snapshot agree), and a rerun gives the content of an undisturbed run.

The inputs are tests/test_build_jobs' logs (conftest's template). One warehouse per module holds
the state up to D-1 and a previous build of D (L_max 2); each test copies it and builds D with
L_max 3, so "intact" (the L_max 2 rows) and "rerun converged" (the L_max 3 rows) differ.
`-m faults_slow` adds the same kills on build_user_history (not in `make test`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import build_request_samples, build_user_history
from jobs.build_request_samples import Args as SamplesArgs
from jobs.build_user_history import Args as HistoryArgs
from jobs.delta_io import InputFileError, latest_version
from jobs.faults import KILLED_STATUS, InjectedFault
from jobs.history_state import StateOrderError, state_versions
from loader import resolve_snapshot
from schemas import IMPRESSIONS, QUARANTINE, REQUEST_SAMPLES_STAGING, USER_HISTORY, ContractError

pytestmark = pytest.mark.spark

D0, D1, D = "2026-02-01", "2026-02-02", "2026-02-03"
REPO = Path(__file__).resolve().parents[1]
JOB_ERROR = "build_request_samples: error: "


def content_hash(spark: SparkSession, path: str, where: str | None = None) -> str:
    """sha256 over the sorted rows of a Delta table (or the rows matching `where`)."""
    df = spark.read.format("delta").load(path)
    rows = sorted(repr(tuple(r)) for r in (df.where(where) if where else df).collect())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass(frozen=True)
class Template:
    root: str
    previous: str  # hash of the output (staging) as built with L_max 2
    previous_quarantine: str
    undisturbed: str  # hash of the output after an undisturbed L_max 3 build
    undisturbed_quarantine: str


def _day(spark: SparkSession, wh: str, day: str) -> tuple[str, str]:
    """Hashes of one date of the output and of its impressions quarantine."""
    where = f"date = '{day}'"
    return (
        content_hash(spark, REQUEST_SAMPLES_STAGING.location(wh), where),
        content_hash(spark, QUARANTINE.location(wh), f"source_table = 'impressions' AND {where}"),
    )


def _tables(spark: SparkSession, wh: str) -> tuple[str, str]:
    out = content_hash(spark, REQUEST_SAMPLES_STAGING.location(wh))
    return out, content_hash(spark, QUARANTINE.location(wh), "source_table = 'impressions'")


@pytest.fixture(scope="module")
def template(spark: SparkSession, _logs_template: str, tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = str(tmp_path_factory.mktemp("faults") / "warehouse")
    shutil.copytree(_logs_template, root)
    for day in (D0, D1):
        build_user_history.run(spark, HistoryArgs(date=day, warehouse=root, state_len=4))
    build_request_samples.run(spark, SamplesArgs(date=D, warehouse=root, l_max=2))
    undisturbed = str(tmp_path_factory.mktemp("undisturbed") / "warehouse")
    shutil.copytree(root, undisturbed)
    build_request_samples.run(spark, SamplesArgs(date=D, warehouse=undisturbed, l_max=3))
    return Template(root, *_tables(spark, root), *_tables(spark, undisturbed))


@pytest.fixture()
def wh(template: Template, tmp_path: Path) -> str:
    root = str(tmp_path / "warehouse")
    shutil.copytree(template.root, root)
    return root


def _env(fault: str | None) -> dict[str, str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("RLB_FAULT", None)
    if fault:
        env["RLB_FAULT"] = fault
    return env


def _command(job: str, wh: str, date: str = D, *extra: str) -> list[str]:
    return [sys.executable, "-m", f"jobs.{job}", "--warehouse", wh, "--date", date, *extra]


def _build(wh: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = _command("build_request_samples", wh, D, "--l-max", "3")
    return subprocess.run(cmd, env=_env(fault), cwd=REPO, capture_output=True, text=True, timeout=300)


def _rerun(spark: SparkSession, wh: str) -> None:
    build_request_samples.run(spark, SamplesArgs(date=D, warehouse=wh, l_max=3))


def _snapshot_rows(path: str) -> int:
    """Rows the loader's snapshot of the latest version names (it reads the Delta log, not the folder)."""
    snap = resolve_snapshot(path)
    assert all(Path(f).stat().st_size > 0 for f in snap.files), snap.files
    return snap.num_records or 0


@pytest.mark.parametrize("point", ["before_write", "mid_write", "after_commit"])
def test_kill_leaves_the_previous_version_and_a_rerun_converges(
    spark: SparkSession, template: Template, wh: str, point: str
) -> None:
    out_path = REQUEST_SAMPLES_STAGING.location(wh)
    version, rows = latest_version(spark, out_path), _snapshot_rows(out_path)
    run = _build(wh, f"build_request_samples:{point}")
    assert run.returncode in (KILLED_STATUS, -9), run.stderr[-3000:]
    assert "build_request_samples: {" not in run.stderr  # died before its summary
    if point == "after_commit":  # committed, never checked: the rerun's own check covers the day
        assert latest_version(spark, out_path) == version + 1
        assert _tables(spark, wh) == (template.undisturbed, template.undisturbed_quarantine)
    else:
        assert latest_version(spark, out_path) == version
        assert _tables(spark, wh) == (template.previous, template.previous_quarantine)
        assert _snapshot_rows(out_path) == rows  # leftover part files are in no commit
    _rerun(spark, wh)
    assert _tables(spark, wh) == (template.undisturbed, template.undisturbed_quarantine)


def test_failed_output_write_after_quarantine_restores_both(
    spark: SparkSession, template: Template, wh: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One day, one outcome: the new run's quarantine rows (one more invalid impression) are
    committed, then the output write fails: both tables hold the previous run's rows again."""
    imp = IMPRESSIONS.location(wh)
    bad = spark.read.format("delta").load(imp).where(f"date = '{D}'").limit(1).selectExpr("*")
    bad = bad.withColumn("like", bad["like"] * 0 + 2)  # a label outside {0, 1}: quarantined
    bad.write.format("delta").mode("append").save(imp)
    q_path = QUARANTINE.location(wh)
    q_version = latest_version(spark, q_path)
    monkeypatch.setenv("RLB_FAULT", "build_request_samples:after_quarantine:raise")
    with pytest.raises(InjectedFault) as failed:
        _rerun(spark, wh)
    assert f"quarantine restored to version {q_version}" in " ".join(failed.value.__notes__)
    assert latest_version(spark, q_path) == q_version + 2  # the write, then the RESTORE naming it
    assert _tables(spark, wh) == (template.previous, template.previous_quarantine)


def test_concurrent_runs_same_date_one_wins_other_date_both_succeed(
    spark: SparkSession, template: Template, wh: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs wait at before_write for each other, then write together: two of D (command
    lines) and one of D1 (in this process, on its warm session). Of the two D runs Delta lets one
    commit; the other exits 1 with one line naming the date, the table and what to do. The D1 run
    writes other partitions (each write's replaceWhere covers its own dates), so Delta finds no
    conflict with it: it succeeds."""
    fault = f"build_request_samples:before_write:barrier3={tmp_path / 'barrier'}"
    cmd = _command("build_request_samples", wh, D, "--l-max", "3")
    pipes = {"stderr": subprocess.PIPE, "stdout": subprocess.DEVNULL, "text": True}
    procs = [subprocess.Popen(cmd, env=_env(fault), cwd=REPO, **pipes) for _ in range(2)]  # type: ignore[call-overload]
    try:
        monkeypatch.setenv("RLB_FAULT", fault)
        other_date = build_request_samples.run(spark, SamplesArgs(date=D1, warehouse=wh, l_max=3))
        monkeypatch.delenv("RLB_FAULT")
    except BaseException:
        for proc in procs:  # they would wait at the barrier for this run
            proc.kill()
        raise
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], [e[-2000:] for e in errs]
    loser = errs[[p.returncode for p in procs].index(1)]
    lines = [line for line in loser.splitlines() if line.startswith(JOB_ERROR)]
    assert len(lines) == 1, loser[-3000:]
    assert f"date {D}" in lines[0] and "of table " in lines[0] and "Wait for the other run" in lines[0]
    assert "Traceback" not in loser and "py4j" not in loser.lower()
    assert _day(spark, wh, D) == (template.undisturbed, template.undisturbed_quarantine)
    # D1's run checked conservation on what it committed before returning; its rows are there.
    d1 = resolve_snapshot(REQUEST_SAMPLES_STAGING.location(wh), date_from=D1, date_to=D1)
    assert other_date["requests"] == d1.num_records > 0


def _damage(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_damaged_input_file_is_named_and_nothing_is_written(
    spark: SparkSession, template: Template, wh: str, how: str
) -> None:
    victim = Path(resolve_snapshot(IMPRESSIONS.location(wh), date_from=D, date_to=D).files[0])
    versions = {
        p: latest_version(spark, p) for p in (REQUEST_SAMPLES_STAGING.location(wh), QUARANTINE.location(wh))
    }
    _damage(victim, how)
    with pytest.raises(
        InputFileError, match=f"data file {victim} is {'missing' if how == 'deleted' else 'truncated'}"
    ):
        _rerun(spark, wh)
    assert {p: latest_version(spark, p) for p in versions} == versions


@pytest.mark.parametrize("drift", ["widened", "extra"])
def test_drifted_input_schema_is_refused_before_any_write(
    spark: SparkSession, template: Template, wh: str, drift: str
) -> None:
    imp = IMPRESSIONS.location(wh)
    df = spark.read.format("delta").load(imp)
    df = (
        df.withColumn("like", df["like"].cast("bigint"))
        if drift == "widened"
        else df.withColumn("extra", df["like"])
    )
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy("date").save(imp)
    versions = {
        p: latest_version(spark, p) for p in (REQUEST_SAMPLES_STAGING.location(wh), QUARANTINE.location(wh))
    }
    expected = (
        "column 'like' is bigint, the contract says int" if drift == "widened" else "column 'extra' is not in"
    )
    with pytest.raises(ContractError, match=expected):
        _rerun(spark, wh)
    assert {p: latest_version(spark, p) for p in versions} == versions


def test_zero_byte_part_files_are_ignored_by_readers(
    spark: SparkSession, template: Template, wh: str
) -> None:
    out_path = REQUEST_SAMPLES_STAGING.location(wh)
    rows = _snapshot_rows(out_path)
    for folder in (Path(out_path), Path(out_path) / f"date={D}"):
        (folder / "part-00000-0badc0de-0000-0000-0000-000000000000.c000.snappy.parquet").touch()
    assert content_hash(spark, out_path) == template.previous
    assert _snapshot_rows(out_path) == rows


def test_every_job_command_line_exits_through_the_job_error_path() -> None:
    """Each job whose main runs through run_job ends its __main__ block with exit_on_job_error, so
    its errors read as one `<job>: error:` line and exit status 1 (jobs/runner.py)."""
    sources = {p.name: p.read_text() for p in (REPO / "jobs").glob("*.py")}
    jobs = {name: text for name, text in sources.items() if "\ndef main(" in text and "run_job(" in text}
    assert len(jobs) >= 10
    for name, text in jobs.items():
        _, _, block = text.partition('\nif __name__ == "__main__":')
        assert block and "exit_on_job_error(" in block and "main, sys.argv[1:])" in block, name


def test_date_must_have_the_yyyy_mm_dd_shape(capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("20260103", "2026-W01-6"):
        with pytest.raises(SystemExit):
            build_request_samples.parse_args(["--date", text])
        assert f"expected a date as YYYY-MM-DD, got '{text}'" in capsys.readouterr().err


def test_out_of_order_history_names_the_version_to_restore(spark: SparkSession, wh: str) -> None:
    build_user_history.run(spark, HistoryArgs(date=D, warehouse=wh, state_len=4))
    v0 = next(v.version for v in state_versions(spark, USER_HISTORY.location(wh)) if v.as_of_date == D0)
    with pytest.raises(StateOrderError, match=f"TO VERSION AS OF {v0}\\)"):
        build_user_history.run(spark, HistoryArgs(date=D1, warehouse=wh, state_len=4))


@pytest.mark.faults_slow
@pytest.mark.parametrize("point", ["before_write", "after_quarantine", "mid_write", "after_commit"])
def test_kill_user_history_keeps_state_and_quarantine_agreeing(
    spark: SparkSession, wh: str, point: str
) -> None:
    """Deeper variant: build_user_history of D killed at each point; the rerun gives the state and
    quarantine an undisturbed build gives (compared on a second copy)."""
    state, q = USER_HISTORY.location(wh), QUARANTINE.location(wh)
    twin = wh + "-twin"
    shutil.copytree(wh, twin)
    build_user_history.run(spark, HistoryArgs(date=D, warehouse=twin, state_len=4))
    cmd = _command("build_user_history", wh, D, "--state-len", "4")
    run = subprocess.run(
        cmd, env=_env(f"build_user_history:{point}"), cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode in (KILLED_STATUS, -9), run.stderr[-3000:]
    build_user_history.run(spark, HistoryArgs(date=D, warehouse=wh, state_len=4))
    got = (content_hash(spark, state), content_hash(spark, q))
    assert got == (
        content_hash(spark, USER_HISTORY.location(twin)),
        content_hash(spark, QUARANTINE.location(twin)),
    )
