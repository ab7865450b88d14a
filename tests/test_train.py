"""The training loop: a run end to end, exact resume, data parallel with two gloo processes, and the
history-collapse alarm."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import loader.snapshot
import trainer.train
from loader import LoaderError, RequestBatch, active_pins
from loader.batch import HISTORY_FIELDS
from synthetic.batches import planted_batch, tiny_config
from synthetic.tables import SyntheticSamples, write_synthetic_samples
from trainer.checkpoint import load_checkpoint
from trainer.config import STCAConfig, VISTAConfig
from trainer.metrics import compare_runs, history_collapse_warnings, history_probe, shuffled_history
from trainer.registry import build_model
from trainer.train import Dist, TrainConfig, get_lr, main, parse_args, rank_loader_state, train

pytestmark = pytest.mark.timeout(300)

TINY_MODEL = {"d": 16, "heads": 2, "layers": 1, "id_dim": 8, "head_hidden": 16,
              "item_buckets": 1024, "author_buckets": 256, "user_buckets": 256}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("train") / "request_samples")
    write_synthetic_samples(
        path,
        SyntheticSamples(
            num_requests=96,
            dates=("2026-01-01", "2026-01-02"),
            l_max=300,
            mean_hist=60,
            max_targets=4,
            rows_per_group=24,
        ),
    )
    return path


def config(table: str, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        table=table,
        out=str(out),
        train_to="2026-01-01",
        eval_date="2026-01-02",
        steps=6,
        batch_size=8,
        warmup=2,
        length_min=8,
        length_max=300,
        length_mean=40.0,
        eval_lengths=(16, 300),
        checkpoint_every=3,
        model_config=STCAConfig(**TINY_MODEL),
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_get_lr_warms_up_then_decays_to_the_floor() -> None:
    cfg = TrainConfig(table="t", out="o", lr=1.0, warmup=10, steps=110, min_lr_ratio=0.1)
    assert get_lr(0, cfg) == pytest.approx(0.1) and get_lr(9, cfg) == pytest.approx(1.0)
    assert get_lr(60, cfg) == pytest.approx(0.55) and get_lr(110, cfg) == pytest.approx(0.1)


def test_train_writes_metrics_per_task_and_inference_length(table: str, tmp_path: Path) -> None:
    result = main(["--table", table, "--out", str(tmp_path / "run"), "--train-to", "2026-01-01",
                   "--eval-date", "2026-01-02", "--steps", "4", "--batch-size", "8", "--length-max", "300",
                   "--length-min", "8", "--length-mean", "40", "--eval-lengths", "16,300", "--device", "cpu",
                   "--model-config", json.dumps(TINY_MODEL)])
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["train"]["steps"] == 4 == result["train"]["steps"]
    assert set(written["eval"]) == {"16", "300"}
    assert set(written["eval"]["300"]) == set(written["model_config"]["tasks"])
    assert {"auc", "gauc", "logloss"} <= set(written["eval"]["300"]["finish"])
    assert written["table_version"] == 0 and (tmp_path / "run" / "checkpoint.pt").exists()


def test_eval_dates_are_checked_before_training(
    table: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(
        LoaderError, match="no data files for dates 2026-01-05 .. 2026-01-05; check --eval-date"
    ):
        train(config(table, tmp_path / "missing", eval_date="2026-01-05"))
    assert not (tmp_path / "missing" / "checkpoint.pt").exists(), "no step ran"
    with pytest.raises(ValueError, match="date_to must be a date as YYYY-MM-DD"):
        train(config(table, tmp_path / "bad", train_to="2026-1-1"))
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        train(config(table, tmp_path / "overlap", train_to=None, steps=1, eval_lengths=(16,)))
    assert "overlap the evaluation dates 2026-01-02..2026-01-02" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        train(config(table, tmp_path / "held_out", steps=1, eval_lengths=(16,)))
    assert "overlap" not in caplog.text


def test_a_run_resolves_the_snapshot_once(
    table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = loader.snapshot.resolve_snapshot

    def counted(*args: object, **kwargs: object) -> loader.snapshot.Snapshot:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader.snapshot, "resolve_snapshot", counted)
    monkeypatch.setattr(trainer.train, "resolve_snapshot", counted)
    result = train(config(table, tmp_path / "once", steps=1))
    assert set(result["eval"]) == {"16", "300"} and result["label_rates"] is not None
    assert len(calls) == 1, calls  # loader, eval-range check, label rates and both eval lengths share it


def test_model_config_is_typed_per_model_and_refuses_unknown_keys(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--table", "t", "--out", "o", "--model-config", json.dumps({"d": 32, "summary_tokens": 4})]
    vista = parse_args([*args, "--model", "vista"]).model_config
    assert isinstance(vista, VISTAConfig) and (vista.d, vista.summary_tokens) == (32, 4)
    assert type(parse_args(["--table", "t", "--out", "o"]).model_config) is STCAConfig
    with pytest.raises(SystemExit):
        parse_args([*args, "--model", "stca"])
    assert "unknown config field(s) ['summary_tokens'] for model 'stca'" in capsys.readouterr().err
    assert isinstance(TrainConfig(table="t", out="o", model="vista").model_config, VISTAConfig)


def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(table: str, tmp_path: Path) -> None:
    full = config(table, tmp_path / "full", eval_date=None)
    train(full)
    half = config(table, tmp_path / "half", eval_date=None, stop_at=2, checkpoint_every=100)
    train(half)
    resumed = config(
        table, tmp_path / "half", eval_date=None, resume=str(tmp_path / "half" / "checkpoint.pt")
    )
    train(resumed)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    assert json.loads(a["loader_state"]) == json.loads(b["loader_state"])
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, msg=lambda m, n=name: f"{n}: {m}")


def test_data_parallel_with_two_gloo_processes_stops_and_resumes(table: str, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        "-m",
        "trainer.train",
        "--table",
        table,
        "--out",
        str(out),
        "--train-to",
        "2026-01-01",
        "--eval-date",
        "2026-01-02",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--length-max",
        "300",
        "--length-min",
        "8",
        "--length-mean",
        "40",
        "--eval-lengths",
        "300",
        "--device",
        "cpu",
        "--model-config",
        json.dumps(TINY_MODEL),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*extra: str) -> None:
        proc = subprocess.run(
            [*cmd, *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
            cwd=Path(__file__).parents[1],
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    run("--stop-at", "2")
    ckpt = load_checkpoint(out / "checkpoint.pt")
    ranks = ckpt.loader_state["ranks"]  # each rank's own position: their batches differ in size
    assert (
        ckpt.step == 2 and [s["rank"] for s in ranks] == [0, 1] and all(s["world_size"] == 2 for s in ranks)
    )
    run("--resume", str(out / "checkpoint.pt"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["train"]["steps"] == 3


def test_resume_refuses_another_number_of_processes() -> None:
    two = {"ranks": [{"rank": 0}, {"rank": 1}]}
    assert rank_loader_state(two, Dist(rank=1, world_size=2), "c.pt") == {"rank": 1}
    assert rank_loader_state({"rank": 0}, Dist(), "c.pt") == {"rank": 0}
    with pytest.raises(ValueError, match="written by 2 process.*this run has 1.*--nproc-per-node 2"):
        rank_loader_state(two, Dist(), "c.pt")
    with pytest.raises(ValueError, match="written by 1 process.*this run has 2"):
        rank_loader_state({"rank": 0}, Dist(rank=0, world_size=2), "c.pt")


class _HistoryBlind(torch.nn.Module):
    """A stub following the Ranker API whose logits read the targets only, never the history."""

    def __init__(self) -> None:
        super().__init__()
        self.item = torch.nn.Embedding(1024, 3)

    def logits(self, batch: RequestBatch) -> torch.Tensor:
        return self.item(batch.tgt_item_id % 1024)


def test_collapse_alarm_fires_when_predictions_ignore_the_history() -> None:
    batches = [planted_batch(8, 32, 4, seed=s) for s in range(3)]
    probe = history_probe(_HistoryBlind(), batches)
    assert probe is not None and probe["mean_abs_logit_change"] == 0.0
    flat: dict[str, dict[str, dict[str, Any]]] = {
        n: {"finish": {"auc": 0.55461}, "like": {"auc": 0.48}, "skip": {"absent": "no positives"}}
        for n in ("16", "256", "10000")
    }
    warnings = history_collapse_warnings(flat, probe)
    assert [w["test"] for w in warnings] == ["auc_flat_across_lengths", "history_probe"]
    assert all(w["kind"] == "history_collapse" for w in warnings)
    flat["10000"]["like"]["auc"] = 0.49  # one task moving with length is enough to stay quiet
    assert history_collapse_warnings(flat, None) == []


def test_probe_swaps_across_users_and_measures_only_changed_histories() -> None:
    """Requests of one user sit together and share their history; an evaluation order grouped by
    length starts with cold-start batches. A plain roll compared identical histories there and
    reported 0.0 for models that read the history (the false alarm this guards against)."""
    batch = planted_batch(8, 32, 4, seed=0)
    same = {f: batch.__dict__[f][[0, 0, 0, 0, 4, 4, 4, 4]] for f in ("hist_len", *HISTORY_FIELDS)}
    batch = dataclasses.replace(batch, user_id=torch.tensor([5, 5, 5, 5, 9, 9, 9, 9]), **same)
    swapped, changed = shuffled_history(batch)
    assert bool(changed.all()) and bool((swapped.hist_item_id[:4] == batch.hist_item_id[4]).all())
    empty = dataclasses.replace(batch, hist_len=torch.zeros(8, dtype=torch.int64),
                                **{f: torch.zeros_like(same[f]) for f in HISTORY_FIELDS})  # fmt: skip
    reader = build_model("stca", tiny_config())
    assert history_probe(reader, [empty]) is None  # nothing to swap: no measurement, no alarm
    probe = history_probe(reader, [empty, batch])
    assert probe is not None and probe["values"] == int(batch.num_targets.sum()) * batch.labels.shape[-1]


def test_collapse_alarm_stays_quiet_for_stca_trained_on_history_signal() -> None:
    torch.manual_seed(0)
    model = build_model("stca", tiny_config())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(200):  # ~1.5 s; at 30 steps the tiny STCA still barely reads the history
        _, loss = model(planted_batch(16, 48, 4, seed=100 + step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe = history_probe(model, [planted_batch(16, 48, 4, seed=s) for s in range(2)])
    assert probe is not None and probe["mean_abs_logit_change"] > 10 * probe["threshold"], probe
    assert history_collapse_warnings({}, probe) == []


def test_metrics_json_has_intervals_warnings_and_paired_comparisons(table: str, tmp_path: Path) -> None:
    train(config(table, tmp_path / "a", steps=3, bootstrap_replicates=50))
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())
    finish = written["eval"]["300"]["finish"]
    assert finish["auc_ci"][0] <= finish["auc"] <= finish["auc_ci"][1]
    assert isinstance(written["warnings"], list) and written["history_probe"]["values"] > 0
    same = compare_runs(tmp_path / "a", tmp_path / "a", STCAConfig().tasks, replicates=20)
    assert same["16"]["finish"]["auc"] == {"metric": "auc", "diff": 0.0, "diff_ci": [0.0, 0.0],
                                           "verdict": "no difference"}  # fmt: skip


def test_a_run_pins_the_version_it_reads_unless_told_not_to(tmp_path: Path) -> None:
    """jobs/maintain_tables.py keeps every pinned version: a run registers the one it reads."""
    path = str(tmp_path / "request_samples")
    samples = SyntheticSamples(
        num_requests=32, dates=("2026-01-01", "2026-01-02"), l_max=100, mean_hist=20, max_targets=4,
        rows_per_group=16,
    )  # fmt: skip
    write_synthetic_samples(path, samples)
    train(config(path, tmp_path / "unpinned", steps=1, eval_date=None, pin_days=0))
    assert active_pins(path) == []
    train(config(path, tmp_path / "pinned", steps=1, eval_date=None))
    assert active_pins(path) == [0]
