"""MRLB (trainer/mrlb.py) and STCA's request-independent history (STCAConfig.history_time="bias"):
the same loss and gradients as RLB and point-wise on the same requests, no request sees an event
outside its own slice of the window, bad grouped batches are refused before the forward, the
variant learns, and `trainer.train --mode mrlb` trains, resumes and runs data-parallel."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.quality import build, train_config
from loader import GroupedBatch, GroupedBatchError, RequestBatch
from schemas.constants import DEFAULT_L_MAX
from schemas.fields import TASKS
from synthetic.batches import planted_batch, tiny_config, user_day_batch
from synthetic.user_days import SyntheticUserDays, write_synthetic_user_days
from trainer.checkpoint import load_checkpoint
from trainer.config import ConfigError, STCAConfig
from trainer.metrics import auc
from trainer.model import STCA
from trainer.mrlb import MRLB
from trainer.registry import build_model
from trainer.train import TrainConfig, train

pytestmark = [pytest.mark.usefixtures("torch_single_thread", "torch_seed"), pytest.mark.timeout(300)]

# Float32 throughout. Logits: rtol 1e-5, atol 1e-6; gradients: rtol 1e-4, atol 1e-6 (the bounds
# tests/test_model.py holds RLB and point-wise to). The modes sum the same terms in other orders
# (a window-wide matmul vs per-request ones), so they agree to rounding, not bit for bit.
RTOL_LOGITS, RTOL_GRADS, ATOL = 1e-5, 1e-4, 1e-6
L_MAX = 24
L_LONG, LONG_RANGE_STEPS = DEFAULT_L_MAX, 400  # as tests/test_long_range_quality.py
ThreadsForLoad = Callable[[], contextlib.AbstractContextManager[None]]  # conftest.torch_threads_for_load


def groups(seed: int = 27) -> GroupedBatch:
    """4 user-days of 1, 3, 5 and 2 requests. Seed 27 (`covers_every_case`): a cold start, short
    histories, full ones (L_MAX) sliding along the window, and two requests with the same slice."""
    return user_day_batch([1, 3, 5, 2], l_max=L_MAX, max_targets=5, first_events=(0, L_MAX + 8),
                          gap_events=(0, 6), num_items=400, num_authors=50, seed=seed)  # fmt: skip


def covers_every_case(batch: GroupedBatch) -> bool:
    same_group = batch.group[1:] == batch.group[:-1]
    repeated = (same_group & (batch.hist_end[1:] == batch.hist_end[:-1])).any()
    length = batch.hist_len
    return bool((length == 0).any() and (length == L_MAX).any() and (batch.hist_start > 0).any() and repeated)


def variant(**overrides: object) -> STCA:
    """The history_time="bias" STCA with every side table (age biases included) random instead of
    zero, so each of them takes part in what the tests compare."""
    model = STCA(tiny_config(history_time="bias", **overrides))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 0.5)
    return model


def gradients(model: nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attention", ["shortcut", "sdpa"])
def test_mrlb_rlb_and_pointwise_give_the_same_loss_and_gradients(attention: str) -> None:
    batch = groups()
    assert covers_every_case(batch)
    model = variant(attention=attention)
    requests = batch.to_request_batch()
    logits_m, loss_m = MRLB(model)(batch)  # (T, tasks)
    grads_m = gradients(model, loss_m)
    for mode in ("rlb", "pointwise"):
        logits, loss = model(requests, mode)  # (R, M, tasks)
        grads = gradients(model, loss)
        torch.testing.assert_close(logits_m, logits[requests.target_mask], rtol=RTOL_LOGITS, atol=ATOL)
        torch.testing.assert_close(loss_m, loss, rtol=RTOL_LOGITS, atol=ATOL)
        assert set(grads) == set(grads_m) == {n for n, _ in model.named_parameters()}, mode
        for name, grad in grads.items():
            torch.testing.assert_close(
                grads_m[name], grad, rtol=RTOL_GRADS, atol=ATOL, msg=f"{mode} {name}"
            )


def test_mrlb_runs_the_history_side_once_per_window() -> None:
    """The history transform of every layer sees the (G, W) windows once, not the requests'
    (R, L) histories: the saving MRLB exists for."""
    batch = groups()
    model = variant()
    seen: list[tuple[int, ...]] = []
    hooks = [t.register_forward_hook(lambda _m, i, _o: seen.append(tuple(i[0].shape[:2])))
             for t in model.encoder.history_transforms]  # fmt: skip
    MRLB(model)(batch)
    for hook in hooks:
        hook.remove()
    width, targets = int(batch.window_len.max()), int(batch.num_targets.sum())
    queries = (targets, 1)  # tie_query_history_ffn: the same modules transform the (T, 1, d) queries
    assert [shape for shape in seen if shape != queries] == [(batch.num_groups, width)] * model.config.layers
    assert batch.num_window_tokens < batch.num_history_tokens  # the requests share events


def test_no_request_sees_an_event_outside_its_own_slice() -> None:
    """For every request of every group: rewriting every window event before its hist_start or at
    or after its hist_end (all fields, other groups' windows too) leaves its logits bit-identical;
    rewriting its own slice changes them (so the check can fail)."""
    batch = groups()
    assert covers_every_case(batch)
    model = variant().eval()
    mrlb = MRLB(model)
    base = mrlb(batch)[0].detach()
    g = torch.Generator().manual_seed(0)
    noise = {
        name: torch.randint(1, 10**6, v.shape, generator=g).to(v.dtype) for name, v in batch.window.items()
    }
    first = batch.window_offsets[batch.group] + batch.hist_start  # (R,) flat index of each slice
    last = batch.window_offsets[batch.group] + batch.hist_end
    events = torch.arange(batch.num_window_tokens)
    targets = batch.target_offsets
    changed = 0
    for r in range(batch.size):
        inside = (events >= first[r]) & (events < last[r])
        for rewrite, same in ((~inside, True), (inside, False)):
            window = {name: torch.where(rewrite, noise[name], v) for name, v in batch.window.items()}
            logits = mrlb(replace(batch, window=window))[0].detach()
            own = slice(int(targets[r]), int(targets[r + 1]))
            if same:
                assert torch.equal(logits[own], base[own]), batch.request_id[r]
            elif bool(inside.any()):
                changed += int(not torch.allclose(logits[own], base[own]))
    assert changed == int((batch.hist_len > 0).sum())


def test_a_bad_grouped_batch_is_refused_before_the_forward_naming_the_request() -> None:
    batch = groups()
    model = variant()
    calls: list[int] = []
    model.events.register_forward_pre_hook(lambda *_: calls.append(1))
    past_window = batch.hist_end.clone()
    past_window[2] = batch.window_len[batch.group[2]] + 1
    with pytest.raises(GroupedBatchError, match=f"request '{batch.request_id[2]}': history slice"):
        MRLB(model)(replace(batch, hist_end=past_window))
    backwards = batch.hist_start.clone()
    backwards[4] = batch.hist_end[4] + 1
    with pytest.raises(GroupedBatchError, match=f"request '{batch.request_id[4]}'"):
        MRLB(model)(replace(batch, hist_start=backwards))
    assert calls == []


def test_only_the_bias_variant_of_stca_trains_with_mrlb() -> None:
    with pytest.raises(
        ValueError, match="history_time='token'.*--model-config '\\{\"history_time\": \"bias\"\\}'"
    ):
        MRLB(STCA(tiny_config()))
    with pytest.raises(ValueError, match="MRLB trains STCA only.*DIN"):
        MRLB(build_model("din", tiny_config()))
    with pytest.raises(ConfigError, match="DIN supports history_time \\('token',\\), got 'bias'"):
        build_model("din", tiny_config(history_time="bias"))
    with pytest.raises(ConfigError, match="history_time must be one of \\('token', 'bias'\\), got 'late'"):
        tiny_config(history_time="late")
    # The default stays the paper's token form: the age is in the event token, no logit bias.
    default = STCA(STCAConfig())
    assert default.config.history_time == "token" and default.events.time is not None
    assert default.encoder.age_biases is None


def test_the_bias_variant_still_reads_the_age_of_an_event() -> None:
    """With the age out of the token, the per-head bias is what sees it: moving every event of a
    request further into the past changes its logits, and its tokens stay the same. (64 buckets:
    tiny_config's 16 end at a few minutes, where these events are all older.)"""
    model = variant(time_buckets=64).eval()
    batch = planted_batch(4, 16, 3, seed=0)
    older = replace(batch, hist_ts=torch.where(batch.hist_mask, batch.hist_ts - 30 * 86_400_000, 0))
    assert torch.equal(model.events(older), model.events(batch))
    assert not torch.allclose(model(older)[0], model(batch)[0])


def test_the_bias_variant_learns_the_share_of_the_targets_topic() -> None:
    """The fast smoke of the long-range comparison (test_variant_matches_stca_on_the_long_range_signal,
    slow): tests/test_learning.py's planted topic share, where STCA passes AUC 0.7 in 250 steps."""
    config = tiny_config(d=32, heads=2, layers=2, id_dim=32, head_hidden=64, item_buckets=512,
                         task_weights=(1.0,) + (0.0,) * (len(TASKS) - 1), history_time="bias")  # fmt: skip

    def data(seed: int) -> RequestBatch:
        return planted_batch(32, 64, 8, seed=seed, num_topics=6, items_per_topic=10, target_interest_prob=0.0,
                             interest_logit=4.0, base_logit=-1.0)  # fmt: skip

    model = build_model("stca", config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(250):
        _, loss = model(data(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out = [data(10**6 + i) for i in range(4)]
    probs = np.concatenate([model.predict(b)[..., 0].flatten().numpy() for b in held_out])
    labels = np.concatenate([b.labels[..., 0].flatten().numpy() for b in held_out])
    assert auc(probs, labels) > 0.7


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.timeout(1_800)
@pytest.mark.usefixtures("spark")
def test_variant_matches_stca_on_the_long_range_signal(
    tmp_path: Path, torch_threads_for_load: ThreadsForLoad
) -> None:
    """tests/test_long_range_quality.py's data (Spark-built logs whose only signal is the creator
    affinity, far back in histories of up to 10,000 events) and training: the request-independent
    variant's finish AUC at 10,000 events is at least STCA's minus 0.01. Minutes: `pytest -m slow`."""
    table, dates = build(str(tmp_path / "warehouse"), users=150, items=400, topics=6, days=3, l_max=L_LONG,
                         affinity_logit=3.0, interest_logit=0.0)  # fmt: skip
    aucs = {}
    for name, history_time in (("stca", "token"), ("variant", "bias")):
        cfg = train_config(table, str(tmp_path / name), "stca", dates, steps=LONG_RANGE_STEPS, l_max=L_LONG,
                           lengths=(512, L_LONG))  # fmt: skip
        cfg = replace(cfg, model_config=replace(cfg.model_config, history_time=history_time))
        with torch_threads_for_load():
            run = train(cfg)
        aucs[name] = {int(n): m["finish"]["auc"] for n, m in run["eval"].items()}
    print(f"finish AUC at 512 / {L_LONG}: {aucs}")
    assert aucs["variant"][L_LONG] >= aucs["stca"][L_LONG] - 0.01, aucs


TINY_MODEL: dict[str, Any] = {"d": 16, "heads": 2, "layers": 1, "id_dim": 8, "head_hidden": 16,
                              "item_buckets": 1024, "author_buckets": 256, "user_buckets": 256,
                              "history_time": "bias"}  # fmt: skip


@pytest.fixture(scope="module")
def user_days(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("mrlb") / "user_day_samples")
    spec = SyntheticUserDays(num_users=24, dates=("2026-01-01", "2026-01-02"), l_max=200,
                             mean_hist=60.0, mean_requests=3.0, mean_new_events=5.0, max_targets=4,
                             rows_per_group=6)  # fmt: skip
    write_synthetic_user_days(path, None, spec)
    return path


def run_config(table: str, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        table=table, out=str(out), mode="mrlb", train_to="2026-01-01", eval_date="2026-01-02", steps=4,
        batch_size=4, warmup=1, length_min=8, length_max=200, length_mean=40.0, eval_lengths=(16, 200),
        checkpoint_every=100, model_config=STCAConfig(**TINY_MODEL), device="cpu", bootstrap_replicates=0,
        pin_days=0,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_train_mode_mrlb_trains_evaluates_and_resumes_exactly(user_days: str, tmp_path: Path) -> None:
    full = train(run_config(user_days, tmp_path / "full"))
    assert full["train"]["steps"] == 4 and full["train"]["window_tokens_per_s"] > 0
    assert set(full["eval"]) == {"16", "200"} and "auc" in full["eval"]["200"]["finish"]
    train(run_config(user_days, tmp_path / "half", eval_date=None, stop_at=2))
    train(
        run_config(
            user_days, tmp_path / "half", eval_date=None, resume=str(tmp_path / "half" / "checkpoint.pt")
        )
    )
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4 and a["loader_state"] == b["loader_state"]
    assert json.loads(a["loader_state"])["output"] == "groups"
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, msg=name)
    with pytest.raises(ValueError, match="MRLB needs STCA's request-independent history"):
        train(run_config(user_days, tmp_path / "token", model_config=STCAConfig(d=16, heads=2)))


def test_train_mode_mrlb_runs_data_parallel(user_days: str, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541",
           "-m", "trainer.train", "--mode", "mrlb", "--table", user_days, "--out", str(out), "--train-to",
           "2026-01-01", "--steps", "2", "--batch-size", "2", "--length-max", "200", "--length-min", "8",
           "--length-mean", "40", "--device", "cpu", "--pin-days", "0",
           "--model-config", json.dumps(TINY_MODEL)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=240, cwd=Path(__file__).parents[1]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["train"]["steps"] == 2
    ranks = load_checkpoint(out / "checkpoint.pt").loader_state["ranks"]
    assert [s["rank"] for s in ranks] == [0, 1] and all(s["output"] == "groups" for s in ranks)
