"""Checkpoints round-trip every piece of training state and never leave a half-written file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthetic.batches import random_batch, tiny_config
from trainer import checkpoint as ckpt
from trainer.config import STCAConfig, VISTAConfig
from trainer.model import STCA
from trainer.registry import build_model

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


def test_the_config_round_trips_as_the_model_config_class(tmp_path: Path) -> None:
    vista = VISTAConfig.from_dict({**tiny_config(layers=1).to_dict(), "summary_tokens": 4})
    path = ckpt.save_checkpoint(tmp_path / "v.pt", model=build_model("vista", vista), config=vista, step=0,
                                model_name="vista")  # fmt: skip
    loaded = ckpt.load_checkpoint(path)
    assert type(loaded.config) is VISTAConfig and loaded.config == vista
    stca = ckpt.save_checkpoint(tmp_path / "s.pt", model=STCA(vista), config=vista, step=0, model_name="stca")
    assert type(ckpt.load_checkpoint(stca).config) is STCAConfig  # only the fields STCA is built from


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
