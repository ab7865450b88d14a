"""Checkpoints round-trip every piece of training state and never leave a half-written file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer import checkpoint as ckpt
from trainer.model import STCA
from trainer.synthetic import random_batch, tiny_config

pytestmark = pytest.mark.usefixtures("torch_single_thread")




def train_one_step(
    model: STCA, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler
) -> None:
    _, loss = model(random_batch([4, 2], [2, 1], seed=0))
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = tiny_config(layers=1)
    model = STCA(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train_one_step(model, opt, sched)
    loader_state = {"epoch": 1, "sample_in_epoch": 640, "seed": 7}
    path = ckpt.save_checkpoint(
        tmp_path / "ck" / "last.pt", model=model, config=config, step=1, optimizer=opt, scheduler=sched,
        loader_state=loader_state, model_name="stca",
    )  # fmt: skip
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind

    torch.manual_seed(1)
    model2 = STCA(config)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    loaded = ckpt.load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert loaded.step == 1 and loaded.model_name == "stca"
    assert loaded.config == config
    assert loaded.loader_state == loader_state
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, msg=n)
    assert sched2.get_last_lr() == sched.get_last_lr() == [5e-4]
    train_one_step(model, opt, sched)  # the restored run continues identically
    train_one_step(model2, opt2, sched2)
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        torch.testing.assert_close(b, a)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(layers=1)
    model = STCA(config)
    path = ckpt.save_checkpoint(tmp_path / "last.pt", model=model, config=config, step=5)
    before = path.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, model=model, config=config, step=6)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path).step == 5


def test_loader_state_must_be_json_able_and_optimizer_state_present(tmp_path: Path) -> None:
    config = tiny_config(layers=1)
    model = STCA(config)
    with pytest.raises(ckpt.CheckpointError, match="must be JSON-able"):
        ckpt.save_checkpoint(
            tmp_path / "a.pt", model=model, config=config, step=0, loader_state={"t": torch.ones(1)}
        )
    path = ckpt.save_checkpoint(tmp_path / "b.pt", model=model, config=config, step=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ckpt.CheckpointError, match="holds no optimizer state"):
        ckpt.load_checkpoint(path, optimizer=opt)
