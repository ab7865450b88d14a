"""`EpochLoader`: what `RequestLoader` and `CompactLoader` share: resumable seeded epochs.

Each `iter()` is one epoch, whose order is a pure function of (seed, epoch); the loader counts
the samples it has handed out, so `state_dict()` says where this rank is and `load_state_dict()`
makes the next `iter()` skip exactly those samples (no repeat, no gap). A subclass opens one
epoch's stream of batches (`_open_epoch`) and counts an epoch's batches (`_epoch_batches`); this
base keeps the state, checks a resume against the data and sharding it was taken over, refuses
a second concurrent iteration, and refuses to iterate again after a failure (a half-read epoch
would otherwise pass for a whole one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .errors import LoaderError
from .snapshot import DateBound, Snapshot, nonempty_snapshot


class HasSize(Protocol):
    @property
    def size(self) -> int: ...


class EpochConfig(Protocol):
    """The fields of a loader config that fix the order and the sharding (frozen dataclasses)."""

    @property
    def seed(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def world_size(self) -> int: ...
    @property
    def batch_size(self) -> int: ...


BatchT = TypeVar("BatchT", bound=HasSize)
ConfigT = TypeVar("ConfigT", bound=EpochConfig)
BatchT_co = TypeVar("BatchT_co", bound=HasSize, covariant=True)


class EpochStream(Protocol[BatchT_co]):
    """One epoch's batches; close() stops it early (from any thread) and releases its resources."""

    def __iter__(self) -> Iterator[BatchT_co]: ...
    def close(self) -> None: ...


def batch_sizes(rows_per_rank: list[int], batch_size: int, rank: int) -> list[int]:
    """This rank's batch sizes: every rank yields K = max ceil(rows / batch_size) batches, rows
    spread evenly over them, so no rank drops or repeats a request and none waits in DDP."""
    k = max(math.ceil(n / batch_size) for n in rows_per_rank)
    n = rows_per_rank[rank]
    if n < k:
        raise LoaderError(
            f"rank {rank} holds {n} requests but every rank must yield {k} batches (rows per rank: "
            f"{rows_per_rank}); use fewer ranks, a larger batch_size, or a table written in more, "
            "smaller row groups"
        )
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


RESUME_KEYS: tuple[str, ...] = ("seed", "version", "rank", "world_size", "batch_size")


def resume_point(state: dict[str, Any], mine: dict[str, Any]) -> tuple[int, int]:
    """(epoch, sample_in_epoch) of a saved loader state, after checking that it was taken over the
    same data and sharding as `mine` (the loader's own state_dict): else the order would differ
    and a resumed run would repeat or skip requests without noticing."""
    for key in RESUME_KEYS:
        if state.get(key) != mine[key]:
            raise ValueError(
                f"cannot resume: state has {key}={state.get(key)!r}, this loader has {mine[key]!r}"
            )
    epoch, sample = int(state["epoch"]), int(state["sample_in_epoch"])
    if epoch < 0 or sample < 0:
        raise ValueError(f"cannot resume: epoch and sample_in_epoch must be >= 0, got {epoch}, {sample}")
    return epoch, sample


class EpochLoader(Generic[BatchT, ConfigT]):
    """Iterates one epoch per `iter()`, resumable mid-epoch; see the module docstring."""

    def __init__(
        self,
        source: str | Path | Snapshot,
        config: ConfigT,
        *,
        version: int | None,
        date_from: DateBound,
        date_to: DateBound,
        empty_hint: str,
    ) -> None:
        """`source`: a table path (resolved at `version`, default the latest) or a resolved
        Snapshot (narrowed to the dates without reading the Delta log again)."""
        self.config = config
        self.snapshot = nonempty_snapshot(source, version, date_from, date_to, empty_hint)
        self._epoch = 0
        self._resume_at = 0  # samples of the current epoch consumed before a checkpoint
        self._samples = 0  # samples yielded by the current iteration
        self._failed: BaseException | None = None
        self._active: EpochStream[BatchT] | None = None
        self._closed = False  # close() was called during the current iteration

    @property
    def version(self) -> int:
        return self.snapshot.version

    # -- to implement ------------------------------------------------------------------------------
    def _open_epoch(self, epoch: int, skip: int) -> EpochStream[BatchT]:
        """The batches of `epoch` on this rank, without its first `skip` samples."""
        raise NotImplementedError

    def _epoch_batches(self) -> int:
        """Batches of the current epoch (a whole one) on this rank, the same on every rank."""
        raise NotImplementedError

    def _deliver(self, batch: BatchT) -> BatchT:
        """The batch as the consumer gets it (e.g. moved to the device), in the consumer's thread."""
        return batch

    # -- state -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._epoch, self._resume_at = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is, in samples (JSON-able); resume with load_state_dict."""
        cfg = self.config
        return {
            "epoch": self._epoch,
            "sample_in_epoch": self._resume_at + self._samples,
            "seed": cfg.seed,
            "version": self.snapshot.version,
            "rank": cfg.rank,
            "world_size": cfg.world_size,
            "batch_size": cfg.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` at the next iter(); the data and sharding must be the same."""
        self._epoch, self._resume_at = resume_point(state, self.state_dict())
        self._samples = 0

    # -- iteration ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches in the current epoch (a whole one) on this rank, the same on every rank: for LR
        schedules, progress bars and step counts."""
        return self._epoch_batches()

    def __iter__(self) -> Iterator[BatchT]:
        if self._failed is not None:
            raise RuntimeError(
                f"this loader failed earlier ({self._failed}); create a new one"
            ) from self._failed
        if self._active is not None:
            raise RuntimeError("the loader is already being iterated; finish or close that iteration first")
        self._samples, self._closed = 0, False
        try:
            self._active = stream = self._open_epoch(self._epoch, self._resume_at)
            for batch in stream:
                self._samples += batch.size
                yield self._deliver(batch)
                if self._closed:
                    raise LoaderError(
                        f"the loader was closed during epoch {self._epoch}; read on with a new loader "
                        "(its load_state_dict(state_dict()) continues where this one stopped)"
                    )
        except BaseException as e:
            if not isinstance(e, GeneratorExit):
                self._failed = e
            raise
        finally:
            if self._active is not None:
                self._active.close()
            self._active = None
        self._epoch, self._resume_at, self._samples = self._epoch + 1, 0, 0

    def close(self) -> None:
        """Stops the current iteration (its next step raises a LoaderError) and releases it."""
        if self._active is not None:
            self._closed = True
            self._active.close()

    def __enter__(self) -> EpochLoader[BatchT, ConfigT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
