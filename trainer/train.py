"""Train a ranker on `request_samples` with request-level batching, then evaluate it on a held-out
date at several inference lengths.

    python -m trainer.train --table warehouse/request_samples --train-to 2026-01-02 \\
        --eval-date 2026-01-03 --model stca --steps 500 --out runs/stca
    torchrun --nproc-per-node 2 -m trainer.train ...      # data parallel (gloo on CPU, nccl on CUDA)
    python -m trainer.train ... --resume runs/stca/checkpoint.pt
    python -m trainer.train --table warehouse/user_day_samples --mode mrlb \
        --model-config '{"history_time": "bias"}' ...    # MRLB: a user-day's history once (trainer/mrlb.py)

Training uses length-extrapolative sampling (random recent suffixes, mean --length-mean);
evaluation keeps the most recent n events for each n in --eval-lengths. Writes
<out>/metrics.json (config, Delta versions read, throughput, per-task AUC / GAUC / log loss per
length, each AUC / GAUC with a 95% user-bootstrap interval, and "warnings" such as a
history collapse), <out>/eval_predictions.npz (the held-out predictions, for paired model
comparisons: trainer.metrics.compare_runs) and <out>/checkpoint.pt (model, optimizer, scheduler,
step, loader state).

With --mode mrlb the table is `user_day_samples`: training reads whole user-days (grouped
batches, --batch-size counts user-days) and runs STCA's history side once per user-day window;
evaluation reads the same table's held-out dates per request. Other modes read `request_samples`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from loader import (
    DEFAULT_PIN_DAYS,
    LengthSampling,
    LoaderConfig,
    LoaderError,
    RequestBatch,
    RequestLoader,
    Snapshot,
    UserDayLoader,
    UserDayLoaderConfig,
    label_rates,
    nonempty_snapshot,
    register_pin,
    resolve_snapshot,
)
from loader.grouped_batch import GroupedBatch
from schemas.constants import DEFAULT_L_MAX, iso_date
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import STCAConfig
from trainer.metrics import (
    BOOTSTRAP_REPLICATES,
    HISTORY_GRAD_STEPS,
    MetricAccumulator,
    grad_norm,
    history_collapse_warnings,
    history_gradient,
    history_probe,
    write_predictions,
)
from trainer.model import MODES, Ranker
from trainer.mrlb import MRLB
from trainer.registry import MODELS, build_model, model_config, parse_model_config

log = logging.getLogger("trainer.train")

TRAIN_MODES: tuple[str, ...] = (*MODES, "mrlb")  # mrlb: trainer/mrlb.py, on user_day_samples
Loader = RequestLoader | UserDayLoader


@dataclass(frozen=True)
class TrainConfig:
    table: str  # request_samples location (user_day_samples with mode "mrlb")
    out: str  # run folder: metrics.json, checkpoint.pt
    train_from: str | None = None  # first training date (inclusive)
    train_to: str | None = None  # last training date (inclusive)
    eval_date: str | None = None  # held-out date (the first, with eval_to); None skips evaluation
    eval_to: str | None = None  # last held-out date (inclusive): eval_date..eval_to; None: eval_date alone
    version: int | None = None  # pinned table version (default: the latest)
    model: str = "stca"  # one of trainer.registry.MODELS
    mode: str = "rlb"  # "rlb", "pointwise" or "mrlb" (same loss; mrlb reads user_day_samples)
    steps: int = 200  # optimizer steps (epochs repeat as needed)
    batch_size: int = 64  # requests per batch (user-days per batch with mode "mrlb")
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    warmup: int = 20  # linear warm-up steps
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient-norm clip
    length_mean: float | None = 2_000.0  # mean sampled history length; None trains on full histories
    length_min: int = 64
    length_max: int = DEFAULT_L_MAX
    length_alpha: float = 0.2
    eval_lengths: tuple[int, ...] = (512, 2_048, 5_000, DEFAULT_L_MAX)
    eval_batch_size: int = 64
    bootstrap_replicates: int = BOOTSTRAP_REPLICATES  # user resamples per AUC / GAUC interval; 0: none
    probe_batches: int = 4  # eval batches of the history-collapse probe (swapped histories); 0: off
    # Days the run's table version stays pinned in the warehouse's training_pins table, so
    # jobs/maintain_tables.py never vacuums what this run (or its resumption) reads; 0: no pin.
    pin_days: float = DEFAULT_PIN_DAYS
    seed: int = 0
    checkpoint_every: int = 100  # steps between checkpoints (and at the end)
    resume: str | None = None  # checkpoint to continue from
    stop_at: int | None = None  # end this invocation at this step (a time-limited slot); resume later
    device: str = "auto"  # "auto": cuda when available, else cpu
    # The model's config, of its class in trainer.registry.MODELS (VISTAConfig for "vista"); an
    # STCAConfig given to VISTA takes VISTA's defaults for the rest. A dict (parsed JSON) is read
    # into that class, refusing unknown keys.
    model_config: STCAConfig = field(default_factory=STCAConfig)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            return  # train() names the choices
        given: STCAConfig | Mapping[str, Any] = self.model_config
        typed = (
            parse_model_config(self.model, given)
            if isinstance(given, Mapping)
            else model_config(self.model, given)
        )
        object.__setattr__(self, "model_config", typed)


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """torchrun's environment -> a process group (nccl on CUDA, gloo on CPU); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def make_loader(
    cfg: TrainConfig, source: Snapshot, *, grouped: bool = False, date_from: str | None = None,
    date_to: str | None = None, **options: Any,
) -> Loader:
    """The run's table read with LoaderConfig `options`: RequestLoader over request_samples, or
    with mode "mrlb" UserDayLoader over user_day_samples (grouped batches when `grouped`, for
    training; per-request batches otherwise, for evaluation)."""
    if cfg.mode == "mrlb":
        output = "groups" if grouped else "requests"
        return UserDayLoader(source, UserDayLoaderConfig(output=output, **options), date_from=date_from,
                             date_to=date_to)  # fmt: skip
    return RequestLoader(source, LoaderConfig(**options), date_from=date_from, date_to=date_to)


def request_batches(loader: Loader) -> Iterator[RequestBatch]:
    """The loader's batches, each checked to be per-request (evaluation reads requests)."""
    for batch in loader:
        if not isinstance(batch, RequestBatch):
            raise TypeError(f"expected per-request batches from {type(loader).__name__}, got {type(batch)}")
        yield batch


def train_loader(cfg: TrainConfig, snapshot: Snapshot, d: Dist, device: torch.device) -> Loader:
    sampling = (
        None if cfg.length_mean is None
        else LengthSampling(l_min=cfg.length_min, l_max=cfg.length_max, mean=cfg.length_mean,
                            alpha=cfg.length_alpha)
    )  # fmt: skip
    return make_loader(cfg, snapshot, grouped=True, date_from=cfg.train_from, date_to=cfg.train_to,
                       batch_size=cfg.batch_size, seed=cfg.seed, length_sampling=sampling, rank=d.rank,
                       world_size=d.world_size, device=str(device))  # fmt: skip


def check_eval_range(cfg: TrainConfig, snapshot: Snapshot) -> None:
    """Before any step: the held-out dates hold data (else the run would fail only after
    training), and a training range that reaches into them is named (the AUC would be inflated)."""
    eval_from = iso_date(cfg.eval_date, "eval_date")
    eval_to = iso_date(cfg.eval_to, "eval_to") or eval_from
    assert eval_from is not None and eval_to is not None
    hint = "check --eval-date / --eval-to against the table's dates"
    nonempty_snapshot(snapshot, None, eval_from, eval_to, hint)
    train_from, train_to = iso_date(cfg.train_from, "train_from"), iso_date(cfg.train_to, "train_to")
    if (train_to is None or train_to >= eval_from) and (train_from is None or train_from <= eval_to):
        log.warning(
            "training dates %s..%s overlap the evaluation dates %s..%s: the model is evaluated on "
            "requests it trained on; set --train-to before --eval-date for a held-out score",
            train_from or "-inf", train_to or "+inf", eval_from, eval_to,
        )


@torch.no_grad()
def evaluate(
    model: Ranker, cfg: TrainConfig, snapshot: Snapshot, device: torch.device,
    predictions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per inference length: per-task AUC, GAUC (each with its user-bootstrap interval), log loss
    on the eval dates (full pass, one process), all read from `snapshot` (the run's one resolved
    version). `predictions`, when given, receives each length's (probs, labels, users) arrays."""
    out: dict[str, Any] = {}
    held_out = snapshot.between(cfg.eval_date, cfg.eval_to or cfg.eval_date)
    for n in cfg.eval_lengths:
        acc = MetricAccumulator(model.config.tasks, cfg.bootstrap_replicates, cfg.seed)
        loader = make_loader(cfg, held_out, batch_size=cfg.eval_batch_size, shuffle=False, max_history=n,
                             device=str(device))  # fmt: skip
        bar = tqdm(
            request_batches(loader), total=len(loader), desc=f"eval {cfg.model} @{n}", unit="batch",
            leave=False,
        )  # fmt: skip
        with autocast(device):
            for batch in bar:
                acc.update(batch, model.predict(batch))
        out[str(n)] = acc.compute()
        if predictions is not None:
            predictions[str(n)] = acc.arrays()
    return out


@torch.no_grad()
def probe_history(model: Ranker, cfg: TrainConfig, snapshot: Snapshot, device: torch.device) -> Any:
    """The history-collapse probe (trainer.metrics.history_probe) on cfg.probe_batches held-out
    batches at the longest evaluated length; None when off or without batches.

    The batches are drawn in a seeded shuffled order and only those with two or more non-empty
    histories count: the evaluation order groups by length, so its first batches can hold only
    cold-start requests, where swapping histories changes nothing and the probe falsely alarmed."""
    if not cfg.probe_batches:
        return None
    held_out = snapshot.between(cfg.eval_date, cfg.eval_to or cfg.eval_date)
    loader = make_loader(cfg, held_out, batch_size=cfg.eval_batch_size, shuffle=True, seed=cfg.seed,
                         max_history=max(cfg.eval_lengths), device=str(device))  # fmt: skip
    usable = (b for b in request_batches(loader) if int((b.hist_len > 0).sum()) >= 2)
    batches = itertools.islice(usable, cfg.probe_batches)
    with autocast(device):
        return history_probe(model, batches)


def autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA; a no-op context on CPU (CPU autocast is slower than fp32 here)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def pin_snapshot(cfg: TrainConfig, snapshot: Snapshot) -> None:
    """Registers the version this run reads (loader.register_pin) unless pin_days is 0, in the
    warehouse's training_pins table, on local disk or the object store the table is on."""
    if cfg.pin_days <= 0:
        return
    run_id = str(Path(cfg.out).resolve())
    where = register_pin(cfg.table, snapshot.version, run_id=run_id, ttl_days=cfg.pin_days)
    log.info("pinned version %d of %s for %g days in %s", snapshot.version, cfg.table, cfg.pin_days, where)


def train(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.model not in MODELS:
        raise ValueError(f"--model must be one of {sorted(MODELS)}, got {cfg.model!r}")
    if cfg.mode not in TRAIN_MODES:
        raise ValueError(f"--mode must be one of {TRAIN_MODES}, got {cfg.mode!r}")
    d0 = Dist(local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(cfg.device, d0.local_rank)
    d = init_distributed(device)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model_config = cfg.model_config
    model = build_model(cfg.model, model_config).to(device)
    # What the loop calls: the model itself, or MRLB around it (which refuses a model that cannot
    # share a history between requests, before any data is read).
    net: torch.nn.Module = MRLB(model) if cfg.mode == "mrlb" else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: get_lr(s, cfg) / cfg.lr)
    # One resolved version for the whole run: the training loader, the eval-range check, the
    # label rates and every evaluation length narrow it by date without reading the log again.
    snapshot = resolve_snapshot(cfg.table, cfg.version)
    if d.rank == 0:
        pin_snapshot(cfg, snapshot)
    loader = train_loader(cfg, snapshot, d, device)
    if cfg.eval_date:
        check_eval_range(cfg, snapshot)
    step = 0
    rates: tuple[float, ...] | None = None  # a resumed run restores its head with the rest of the model
    if not cfg.resume:
        rates = label_rates(loader.snapshot)
        model.init_task_bias(rates)
        rounded = (round(r, 4) for r in rates)
        log.info("task base rates %s", dict(zip(model_config.tasks, rounded, strict=True)))
    else:
        ckpt = load_checkpoint(
            cfg.resume, model=model, optimizer=optimizer, scheduler=scheduler, map_location=device
        )
        if ckpt.model_name != cfg.model:
            raise ValueError(f"checkpoint {cfg.resume} holds a {ckpt.model_name!r} model, not {cfg.model!r}")
        step = ckpt.step
        loader.load_state_dict(rank_loader_state(ckpt.loader_state, d, cfg.resume))
        log.info("resumed from %s at step %d (loader %s)", cfg.resume, step, ckpt.loader_state)
    ddp: torch.nn.Module = net
    if d.world_size > 1:
        ddp = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model != "stca",
        )  # fmt: skip
    model.train()
    losses: list[float] = []
    history_params = model.history_parameters()
    # (history-only, all) gradient norms of the last steps, on the device, for the collapse alarm
    grad_norms: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=HISTORY_GRAD_STEPS)
    requests = tokens = window_tokens = 0
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", disable=not d.main, unit="step")
    while step < cfg.steps:
        for batch in loader:
            with autocast(device):
                _, loss = ddp(batch) if isinstance(batch, GroupedBatch) else ddp(batch, cfg.mode)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            if history_params:
                grad_norms.append((grad_norm(history_params).detach(), total_norm.detach()))
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            requests, tokens = requests + batch.size, tokens + batch.num_history_tokens
            if isinstance(batch, GroupedBatch):  # the events the history side ran over
                window_tokens += batch.num_window_tokens
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _checkpoint(out, model, model_config, cfg, step, optimizer, scheduler, loader, d)
            if step >= cfg.steps or step == cfg.stop_at:
                break
        if step == cfg.stop_at:
            _checkpoint(out, model, model_config, cfg, step, optimizer, scheduler, loader, d)
            break
    bar.close()
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "config": asdict(cfg),
        "model_config": model_config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "table_version": loader.version,
        "label_rates": rates,  # training base rate per task (output bias init); None when resumed
        "world_size": d.world_size,
        "device": str(device),
        "train": {
            "steps": step,
            "seconds": round(seconds, 2),
            "requests_per_s": round(requests * d.world_size / seconds, 1) if seconds else None,
            "history_tokens_per_s": round(tokens * d.world_size / seconds) if seconds else None,
            # mrlb: events per second through the history side, once per user-day window
            "window_tokens_per_s": (
                round(window_tokens * d.world_size / seconds) if seconds and window_tokens else None
            ),
            "loss_first": losses[0] if losses else None,
            "loss_last_10": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
            # |grad| reaching the history-only parameters, before clipping (the collapse alarm)
            "history_gradient": history_gradient([(float(h), float(t)) for h, t in grad_norms]),
        },
    }
    if cfg.eval_date and d.main:
        model.eval()
        predictions: dict[str, Any] = {}
        result["eval"] = evaluate(model, cfg, snapshot, device, predictions)
        result["history_probe"] = probe_history(model, cfg, snapshot, device)
        result["warnings"] = history_collapse_warnings(
            result["eval"], result["history_probe"], result["train"]["history_gradient"]
        )
        for warning in result["warnings"]:
            log.warning("%s (%s): %s", warning["kind"], warning["test"], warning["message"])
        write_predictions(out / "eval_predictions.npz", predictions)
    if d.main:
        # allow_nan=False: a NaN metric is a bug (absent metrics are left out), so it fails loudly.
        (out / "metrics.json").write_text(
            json.dumps(result, indent=2, sort_keys=True, default=str, allow_nan=False)
        )
        log.info("wrote %s", out / "metrics.json")
    if d.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def recheck_collapse(run_dir: str | Path, steps: int = 20, table: str | None = None) -> dict[str, Any]:
    """The collapse alarm of a finished run, from its metrics.json and checkpoint.pt, for runs
    written before part of it existed: the probe (swap and attention entropy) on its held-out
    dates, and the history-path gradient over `steps` training batches at the final weights
    (gradients only, no update; in training it is the last HISTORY_GRAD_STEPS steps instead).
    `table`: where the run's table is now, when it moved since (default: the run's own path).
    -> {"history_probe", "history_gradient", "warnings"}, as train() writes them."""
    run = json.loads((Path(run_dir) / "metrics.json").read_text())
    saved = {**run["config"], "table": table or run["config"]["table"]}
    cfg = TrainConfig(**{**saved, "eval_lengths": tuple(saved["eval_lengths"]), "device": "cpu"})
    if cfg.mode == "mrlb":
        raise ValueError(f"{run_dir}: recheck_collapse reads request batches; this run trained with mrlb")
    ckpt = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    model = build_model(ckpt.model_name, ckpt.config)
    load_checkpoint(Path(run_dir) / "checkpoint.pt", model=model)
    device = torch.device("cpu")
    snapshot = resolve_snapshot(cfg.table, run["table_version"])
    model.eval()
    probe = probe_history(model, cfg, snapshot, device)
    model.train()
    params, norms = model.history_parameters(), []
    for batch in itertools.islice(request_batches(train_loader(cfg, snapshot, Dist(), device)), steps):
        model.zero_grad(set_to_none=True)
        model(batch, cfg.mode)[1].backward()
        total = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        norms.append((float(grad_norm(params)), float(total)))
    gradient = history_gradient(norms)
    return {"history_probe": probe, "history_gradient": gradient,
            "warnings": history_collapse_warnings(run["eval"], probe, gradient)}  # fmt: skip


def _checkpoint(out: Path, model: Ranker, model_config: STCAConfig, cfg: TrainConfig, step: int,
                optimizer: torch.optim.Optimizer, scheduler: Any, loader: Loader, d: Dist) -> None:
    """Rank 0 writes; every rank calls (the loader states are gathered). Ranks hold identical
    weights, but each rank's loader has its own position: all of them are saved, by rank."""
    state: dict[str, Any] = loader.state_dict()
    if d.world_size > 1:
        states: list[Any] = [None] * d.world_size
        dist.all_gather_object(states, state)
        state = {"ranks": states}
    if d.main:
        save_checkpoint(out / "checkpoint.pt", model=model, config=model_config, step=step,
                        model_name=cfg.model, optimizer=optimizer, scheduler=scheduler,
                        loader_state=state)  # fmt: skip


def rank_loader_state(state: dict[str, Any], d: Dist, path: str) -> dict[str, Any]:
    """This rank's loader state from a checkpoint's (one state, or one per rank under "ranks")."""
    saved = len(state["ranks"]) if "ranks" in state else 1
    if saved != d.world_size:
        raise ValueError(
            f"{path} was written by {saved} process(es) and this run has {d.world_size}: the loader's "
            f"shards differ, so data would repeat or be skipped; resume with --nproc-per-node {saved}"
        )
    return state["ranks"][d.rank] if "ranks" in state else state


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="trainer.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = TrainConfig(table="", out="")
    p.add_argument("--table", required=True,
                   help="request_samples Delta table (user_day_samples with --mode mrlb)")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder for metrics.json and checkpoint.pt")
    p.add_argument("--train-from", default=None, help="first training date, YYYY-MM-DD")
    p.add_argument("--train-to", default=None, help="last training date, YYYY-MM-DD")
    p.add_argument(
        "--eval-date", default=None, help="held-out date to evaluate on (the first, with --eval-to)"
    )
    p.add_argument(
        "--eval-to", default=None, help="last held-out date (inclusive): evaluate on --eval-date..--eval-to"
    )
    p.add_argument("--version", type=int, default=None, help="pinned table version (default: latest)")
    p.add_argument("--model", default=defaults.model, choices=sorted(MODELS))
    mrlb = 'whole user-days of user_day_samples, STCA with --model-config \'{"history_time": "bias"}\''
    p.add_argument("--mode", default=defaults.mode, choices=TRAIN_MODES,
                   help=f"rlb (default), pointwise, or mrlb ({mrlb}; --batch-size counts user-days)")
    ints = ("steps", "batch_size", "warmup", "length_min", "length_max", "eval_batch_size", "seed",
            "checkpoint_every", "bootstrap_replicates", "probe_batches")  # fmt: skip
    floats = ("lr", "min_lr_ratio", "weight_decay", "clip", "length_alpha", "pin_days")
    for names, kind in ((ints, int), (floats, float)):
        for name in names:
            p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name),
                           help="default: %(default)s")  # fmt: skip
    p.add_argument("--length-mean", type=float, default=defaults.length_mean,
                   help="mean sampled history length in training; 0 trains on full histories "
                        "(default: %(default)s)")  # fmt: skip
    p.add_argument("--eval-lengths", default=",".join(map(str, defaults.eval_lengths)),
                   help="comma-separated inference lengths (default: %(default)s)")
    p.add_argument("--resume", default=None, help="checkpoint.pt to continue from")
    p.add_argument(
        "--stop-at", type=int, default=None, help="end this invocation at this step (checkpointed)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--model-config", default="{}",
                   help='JSON overrides of the model\'s config (STCAConfig; VISTAConfig for vista), '
                        'e.g. {"d": 64, "layers": 2}; unknown keys are refused')  # fmt: skip
    a = p.parse_args(argv)
    try:
        model_config = parse_model_config(a.model, json.loads(a.model_config))
    except (ValueError, TypeError) as e:  # bad JSON, unknown keys (ConfigError) and bad values
        p.error(f"--model-config: {e}")
    return TrainConfig(
        table=a.table, out=a.out, train_from=a.train_from, train_to=a.train_to, eval_date=a.eval_date,
        eval_to=a.eval_to, version=a.version, model=a.model, mode=a.mode, steps=a.steps,
        batch_size=a.batch_size, lr=a.lr, min_lr_ratio=a.min_lr_ratio, warmup=a.warmup,
        weight_decay=a.weight_decay, clip=a.clip, length_mean=a.length_mean or None,
        length_min=a.length_min, length_max=a.length_max, length_alpha=a.length_alpha,
        eval_lengths=tuple(int(x) for x in a.eval_lengths.split(",") if x),
        eval_batch_size=a.eval_batch_size, seed=a.seed, checkpoint_every=a.checkpoint_every,
        resume=a.resume, stop_at=a.stop_at, device=a.device, model_config=model_config,
        bootstrap_replicates=a.bootstrap_replicates, probe_batches=a.probe_batches, pin_days=a.pin_days,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return train(parse_args(argv))


if __name__ == "__main__":
    try:
        main()
    except LoaderError as e:  # no table or version, a refused or unreachable store: one line, no traceback
        raise SystemExit(f"trainer.train: {e}") from None
