"""Checkpoints: model, optimizer, scheduler, config, step and the loader's state, written atomically.

A checkpoint is written to a temporary file in the same folder, fsynced, then renamed over the
target (os.replace is atomic on POSIX), so a crash mid-save leaves the previous checkpoint intact.
Everything is plain tensors, numbers and strings (the model name and its config as a dict, the
loader state as JSON), so `torch.load(weights_only=True)` reads it; the config comes back as the
model's config class (trainer/registry.py)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.config import VISTA_FIELDS, STCAConfig, VISTAConfig
from trainer.registry import model_config, model_spec

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read into the objects given."""


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns besides restoring the objects passed to it."""

    config: STCAConfig  # of the model's config class (VISTAConfig for "vista")
    step: int
    model_name: str
    loader_state: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    config: STCAConfig,
    step: int,
    model_name: str = "stca",
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    loader_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint to `path` atomically; `loader_state` and `extra` must be JSON-able."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        loader_json = json.dumps(loader_state or {}, sort_keys=True)
        extra_json = json.dumps(extra or {}, sort_keys=True)
    except TypeError as err:
        raise CheckpointError(f"loader_state and extra must be JSON-able: {err}") from err
    payload = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "config": _saved_config(model_name, config),
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loader_state": loader_json,
        "extra": extra_json,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return target


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    map_location: str | torch.device | None = "cpu",
) -> Checkpoint:
    """Restore whichever of model / optimizer / scheduler are given; return config, step, states."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format_version {version}, expected {FORMAT_VERSION}")
    if model is not None:
        model.load_state_dict(payload["model"])
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if payload[name] is None:
                raise CheckpointError(f"checkpoint {path} holds no {name} state, but a {name} was given")
            obj.load_state_dict(payload[name])
    return Checkpoint(
        config=_config(str(payload["model_name"]), payload["config"]),
        step=int(payload["step"]),
        model_name=str(payload["model_name"]),
        loader_state=json.loads(payload["loader_state"]),
        extra=json.loads(payload["extra"]),
    )


def _saved_config(model_name: str, config: STCAConfig) -> dict[str, Any]:
    """The fields of `model_name`'s config class (a VISTAConfig given to STCA keeps STCA's), so
    the checkpoint loads back as exactly the config the model was built from."""
    names = {f.name for f in fields(model_spec(model_name).config_class)}
    return {k: v for k, v in model_config(model_name, config).to_dict().items() if k in names}


def _config(model_name: str, values: dict[str, Any]) -> STCAConfig:
    """The saved config as `model_name`'s config class. Checkpoints written while one config type
    served every model hold the VISTA fields for the others too: those are dropped."""
    cls = model_spec(model_name).config_class
    if not issubclass(cls, VISTAConfig):
        values = {k: v for k, v in values.items() if k not in VISTA_FIELDS}
    # Written before STCAConfig.history_pool existed: the model had no pooled-history input.
    values = {"history_pool": False, "match_prior": True, **values}
    return cls.from_dict(values, model=model_name)
