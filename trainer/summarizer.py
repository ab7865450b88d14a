"""Frozen-model inference for the `user_summaries` cache: `user_history` rows in, summary rows out.

The Spark job jobs/summarize_users.py only reads the state and writes the table; the work per user
happens here, on the executors, through `summarize_partition` (a `mapInArrow` body): Arrow
batches of user_history rows -> forward passes of `batch_size` users through the frozen VISTA
summarizer -> quantized Arrow batches of user_summaries rows. Kept in trainer/ because it is model
code (checkpoint loading, tensors, quantization) and because Spark pickles `summarize_partition`
by reference: executors import this module, and with it the per-worker model cache, instead of
unpickling a copy of the model per task.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from loader import RequestBatch
from schemas.fields import HISTORY_COLUMNS, TASKS
from schemas.user_summaries import USER_SUMMARIES
from trainer.checkpoint import load_checkpoint
from trainer.quantize import quantize, to_bytes
from trainer.registry import build_model
from trainer.vista import VistaRanker


@dataclass(frozen=True)
class SummarizerConfig:
    """One refresh: which frozen model, as of when, how many events per user, how stored."""

    checkpoint: str  # checkpoint.pt of a `trainer.train --model vista` run
    model_version: str  # recorded with every summary (rankers read only theirs)
    date: str  # the refresh day, YYYY-MM-DD: the `date` partition of the rows
    as_of_ts: int  # ms; event ages are measured from here (the end of `date`)
    l_max: int  # most recent events summarized per user
    quantization: str = "int8"  # storage type of the summaries (schemas.user_summaries.QUANTIZATION_DTYPES)
    batch_size: int = 64  # users per forward pass
    torch_threads: int = 1  # torch threads per Spark task, so tasks do not oversubscribe the cores


_MODEL_CACHE: dict[tuple[str, float], VistaRanker] = {}


def load_frozen(checkpoint: str) -> VistaRanker:
    """The VistaRanker of a checkpoint in eval mode, cached per Python worker (path, mtime)."""
    key = (checkpoint, os.path.getmtime(checkpoint))
    if key not in _MODEL_CACHE:
        meta = load_checkpoint(checkpoint)
        if meta.model_name != "vista":
            raise ValueError(
                f"{checkpoint} holds a {meta.model_name!r} model; summarize_users needs a 'vista' checkpoint"
            )
        model = build_model("vista", meta.config)
        load_checkpoint(checkpoint, model=model)
        assert isinstance(model, VistaRanker)
        model.eval().requires_grad_(False)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def padded_suffix(column: pa.ListArray, keep: np.ndarray) -> np.ndarray:
    """The last keep[i] elements of each list, left-aligned and zero-padded: (rows, max(keep))."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    width = int(keep.max(initial=0))
    if width == 0 or len(values) == 0:
        return np.zeros((len(keep), width), values.dtype)
    pos = np.arange(width)[None, :]
    idx = (offsets[1:] - keep)[:, None] + pos  # (rows, width)
    return np.where(pos < keep[:, None], values[np.clip(idx, 0, len(values) - 1)], 0).astype(values.dtype)


def summarize_record_batch(batch: pa.RecordBatch, cfg: SummarizerConfig) -> pa.RecordBatch:
    """user_history rows -> user_summaries rows (the frozen model's summaries, quantized)."""
    model = load_frozen(cfg.checkpoint)
    n = batch.num_rows
    keep = np.minimum(batch.column("hist_len").to_numpy(zero_copy_only=False).astype(np.int64), cfg.l_max)
    hist = {c.name: torch.from_numpy(padded_suffix(batch.column(c.name), keep)) for c in HISTORY_COLUMNS}
    empty_targets = torch.zeros((n, 0), dtype=torch.int64)
    requests = RequestBatch(
        request_id=[""] * n,
        user_id=torch.from_numpy(batch.column("user_id").to_numpy().astype(np.int64)),
        request_ts=torch.full((n,), cfg.as_of_ts, dtype=torch.int64),  # ages from the refresh time
        hist_len=torch.from_numpy(keep),
        num_targets=torch.zeros(n, dtype=torch.int64),
        tgt_item_id=empty_targets, tgt_author_id=empty_targets,
        tgt_position=empty_targets.int(), tgt_duration_ms=empty_targets.int(),
        labels=torch.zeros((n, 0, len(TASKS))),
        **hist,
    )  # fmt: skip
    q, scale = quantize(model.summarize(requests), cfg.quantization)  # (n, k, d), (n, k)
    k, d = q.shape[1], q.shape[2]
    columns = {
        "user_id": pa.array(requests.user_id.numpy(), pa.int64()),
        "as_of_ts": pa.array(np.full(n, cfg.as_of_ts, np.int64)),
        "model_version": pa.array([cfg.model_version] * n, pa.string()),
        "quantization": pa.array([cfg.quantization] * n, pa.string()),
        "num_tokens": pa.array(np.full(n, k, np.int32)),
        "dim": pa.array(np.full(n, d, np.int32)),
        "summary": pa.array(to_bytes(q), pa.binary()),
        "scale": pa.array(list(scale.numpy()), pa.list_(pa.float32())),
        "num_events": pa.array(keep.astype(np.int32)),
        "date": pa.array([cfg.date] * n, pa.string()),
    }
    names = USER_SUMMARIES.column_names
    return pa.RecordBatch.from_arrays([columns[c] for c in names], names=names)


def summarize_partition(batches: Iterable[pa.RecordBatch], cfg: SummarizerConfig) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: re-chunks a partition into forward passes of cfg.batch_size users."""
    torch.set_num_threads(cfg.torch_threads)
    for batch in batches:
        for start in range(0, batch.num_rows, cfg.batch_size):
            yield summarize_record_batch(batch.slice(start, cfg.batch_size), cfg)
