"""The GPU path in one run: the loader feeding a device, and bf16 STCA training fed by it.

    python -m benchmarks.gpu_check                      # on a CUDA machine -> results/gpu_check.json
    python -m benchmarks.gpu_check --device cpu --requests 64 --steps 3 --l-max 400   # smoke run

Made for a short, one-shot lease of a GPU machine (a few minutes): it writes its own synthetic
`request_samples` table (no Spark), then measures

(a) the loader alone, one epoch to the device: requests/s and history tokens/s with pinned
    memory and non-blocking copies (training mode, Beta lengths with mean --length-mean);
(b) STCA training fed by that loader (bf16 autocast on CUDA, AdamW): steps/s, history tokens/s,
    the share of wall time spent waiting for the next batch (near 0: the loader keeps up), peak
    device memory, and that the loss is finite and falls;
(c) one forward/backward step on the longest histories (evaluation mode, up to --l-max): time and
    peak memory, the shape a 10,000-event ranker must handle;
(d) MRLB (trainer/mrlb.py): STCA with history_time="bias" trained on whole user-days of a
    synthetic `user_day_samples` table (loader.UserDayLoader, grouped output) under bf16 autocast
    on CUDA (fp32 on CPU, where autocast is off): steps/s, requests/s, window and history tokens/s,
    that the loss is finite and falls, and that MRLB's loss on the first batch equals RLB's on the
    same requests (relative tolerance 2e-2 under bf16, 1e-5 in fp32).

`python -m benchmarks.trainer` adds bf16 MFU at fixed shapes (its case c).

Not yet run on a GPU (no session so far was lent one); tests/test_gpu_check.py runs this whole
path on CPU at toy size. The lent machines (/work/.library/device) hold Python 3.12 with torch,
numpy 2, pandas and pyarrow, but not petastorm or deltalake, and reach no index: carry those as
cp312 manylinux wheels (petastorm 0.13.1 with dill and diskcache, deltalake 1.6.x; the pinned
pyarrow 14.0.2 too if the image's pyarrow breaks petastorm) in an ignored folder named in `carry`,
install them with `pip install --no-index --no-deps --target`, and run this module with
PYTHONPATH set to that target and the checkout.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.loader import one_epoch
from loader import (
    GroupedBatch,
    LengthSampling,
    LoaderConfig,
    RequestLoader,
    UserDayLoader,
    UserDayLoaderConfig,
)
from schemas.constants import DEFAULT_L_MAX
from synthetic.tables import SyntheticSamples, write_synthetic_samples
from synthetic.user_days import SyntheticUserDays, write_synthetic_user_days
from trainer.config import STCAConfig
from trainer.mrlb import MRLB
from trainer.registry import build_model
from trainer.train import autocast


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": f"{props.major}.{props.minor}", "bf16": torch.cuda.is_bf16_supported()}
    return env


def loader_to_device(table: str, cfg: LoaderConfig, device: torch.device) -> dict[str, Any]:
    loader = RequestLoader(table, cfg)
    one_epoch(loader)  # warm-up: page cache, allocator pools, pinned blocks
    sync(device)
    t0 = time.perf_counter()
    requests, tokens = one_epoch(loader)
    sync(device)
    seconds = time.perf_counter() - t0
    return {
        "batches": len(loader),
        "requests": requests,
        "history_tokens": tokens,
        "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 1),
        "tokens_per_s": round(tokens / seconds),
        "pinned": cfg.pinned,
    }


def fed_training(
    table: str, cfg: LoaderConfig, model_config: STCAConfig, steps: int, device: torch.device
) -> dict[str, Any]:
    """Steps of STCA fed by the loader; the wait for each batch is timed apart from the step."""
    torch.manual_seed(0)
    model = build_model("stca", model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = RequestLoader(table, cfg)
    losses: list[float] = []
    wait = compute = 0.0
    tokens = requests = 0
    warmup = min(3, max(0, steps - 1))  # kernel selection and allocator growth, not timed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    while len(losses) < steps + warmup:
        batches = iter(loader)
        while len(losses) < steps + warmup:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            if batch is None:
                break
            with autocast(device):
                _, loss = model(batch, "rlb")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))  # a sync: the step's time is its own
            t2 = time.perf_counter()
            if len(losses) > warmup:
                wait, compute = wait + t1 - t0, compute + t2 - t1
                tokens, requests = tokens + batch.num_history_tokens, requests + batch.size
    loader.close()
    seconds = wait + compute
    timed = losses[warmup:]
    k = max(1, len(timed) // 5)
    return {
        "steps": len(timed), "batch_size": cfg.batch_size, "seconds": round(seconds, 3),
        "steps_per_s": round(len(timed) / seconds, 2), "requests_per_s": round(requests / seconds, 1),
        "history_tokens_per_s": round(tokens / seconds), "loader_wait_share": round(wait / seconds, 4),
        "loss_first": round(sum(timed[:k]) / k, 4), "loss_last": round(sum(timed[-k:]) / k, 4),
        "loss_finite": all(math.isfinite(v) for v in losses), "peak_mib": peak_mib(device),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def longest_step(
    table: str, batch_size: int, model_config: STCAConfig, device: torch.device
) -> dict[str, Any]:
    """One training step on the batch with the longest histories of the table (evaluation order
    groups lengths, so the last batch holds the longest)."""
    loader = RequestLoader(
        table, LoaderConfig(batch_size=batch_size, shuffle=False, length_window=10**9, device=str(device))
    )
    batch = None
    for each in loader:
        batch = each
    assert batch is not None
    model = build_model("stca", model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        t0 = time.perf_counter()
        with autocast(device):
            _, loss = model(batch, "rlb")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"batch_size": batch.size, "history_len": int(batch.hist_item_id.shape[1]),
            "targets": int(batch.tgt_item_id.shape[1]), "step_ms": round(1e3 * min(times[1:] or times), 1),
            "peak_mib": peak_mib(device), "loss_finite": math.isfinite(float(loss.detach()))}


def mrlb_training(
    table: str, cfg: UserDayLoaderConfig, model_config: STCAConfig, steps: int, device: torch.device
) -> dict[str, Any]:
    """(d): MRLB steps fed by the user-day loader's grouped batches, and MRLB vs RLB on one batch."""
    torch.manual_seed(0)
    model = build_model("stca", replace(model_config, history_time="bias")).to(device)
    net = MRLB(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = UserDayLoader(table, cfg)
    first: GroupedBatch | None = None
    losses: list[float] = []
    seconds = 0.0
    requests = tokens = window_tokens = 0
    warmup = min(3, max(0, steps - 1))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    while len(losses) < steps + warmup:
        for batch in loader:
            assert isinstance(batch, GroupedBatch)
            first = first or batch
            t0 = time.perf_counter()
            with autocast(device):
                _, loss = net(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))  # a sync
            if len(losses) > warmup:
                seconds += time.perf_counter() - t0
                requests, tokens = requests + batch.size, tokens + batch.num_history_tokens
                window_tokens += batch.num_window_tokens
            if len(losses) == steps + warmup:
                break
    loader.close()
    assert first is not None
    with torch.no_grad(), autocast(device):
        mrlb_loss = float(net(first)[1])
        rlb_loss = float(model(first.to_request_batch(), "rlb")[1])
    timed = losses[warmup:]
    k = max(1, len(timed) // 5)
    tolerance = 2e-2 if device.type == "cuda" else 1e-5
    return {
        "steps": len(timed), "user_days_per_batch": cfg.batch_size, "seconds": round(seconds, 3),
        "autocast": "bf16" if device.type == "cuda" else "off (CPU)",
        "steps_per_s": round(len(timed) / seconds, 2), "requests_per_s": round(requests / seconds, 1),
        "history_tokens_per_s": round(tokens / seconds),
        "window_tokens_per_s": round(window_tokens / seconds),
        "loss_first": round(sum(timed[:k]) / k, 4), "loss_last": round(sum(timed[-k:]) / k, 4),
        "loss_finite": all(math.isfinite(v) for v in losses), "peak_mib": peak_mib(device),
        "first_batch_loss": {"mrlb": mrlb_loss, "rlb": rlb_loss, "relative_tolerance": tolerance},
        "mrlb_matches_rlb": abs(mrlb_loss - rlb_loss) <= tolerance * abs(rlb_loss),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--requests",
        type=int,
        default=4_000,
        help="synthetic requests per date, 2 dates (default: %(default)s)",
    )
    p.add_argument("--l-max", type=int, default=DEFAULT_L_MAX, help="longest history (default: %(default)s)")
    p.add_argument(
        "--length-mean",
        type=float,
        default=2_000.0,
        help="mean sampled training length (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=int, default=128, help="requests per training batch (default: %(default)s)"
    )
    p.add_argument(
        "--steps", type=int, default=100, help="timed training steps in (b) (default: %(default)s)"
    )
    p.add_argument("--workers", type=int, default=4, help="petastorm reader threads (default: %(default)s)")
    p.add_argument("--d", type=int, default=128, help="STCA width (default: %(default)s)")
    p.add_argument("--layers", type=int, default=2, help="STCA layers (default: %(default)s)")
    p.add_argument("--item-buckets", type=int, default=STCAConfig.item_buckets,
                   help="rows of the item embedding table (default: %(default)s)")
    p.add_argument("--user-days", type=int, default=800,
                   help="(d) synthetic user-days per date, 2 dates, ~5 requests each (default: %(default)s)")
    p.add_argument("--mrlb-batch-size", type=int, default=16,
                   help="(d) user-days per MRLB batch (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--workdir", default=".cache/gpu-check", help="scratch folder for the table (deleted first)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="JSON path (default: benchmarks/results/gpu_check[-cpu].json)"
    )
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "--device cuda, but torch sees no CUDA device; check the driver (nvidia-smi) or pass --device cpu"
        )

    table = str(Path(args.workdir) / "request_samples")
    shutil.rmtree(args.workdir, ignore_errors=True)
    rows_per_group = max(16, args.requests // 16)
    spec = SyntheticSamples(num_requests=args.requests, dates=("2026-01-01", "2026-01-02"), l_max=args.l_max,
                            mean_hist=min(2_000.0, args.l_max / 4), rows_per_group=rows_per_group)
    t0 = time.perf_counter()
    write_synthetic_samples(table, spec)
    print(f"wrote {table} ({time.perf_counter() - t0:.1f} s)", flush=True)

    sampling = LengthSampling(
        l_min=min(64, args.l_max), l_max=args.l_max, mean=min(args.length_mean, args.l_max / 2)
    )
    train_cfg = LoaderConfig(
        batch_size=args.batch_size, seed=1, length_sampling=sampling, workers=args.workers, device=str(device)
    )
    model_config = STCAConfig(
        d=args.d, heads=max(1, args.d // 32), layers=args.layers, item_buckets=args.item_buckets
    )
    result: dict[str, Any] = {"environment": environment(device), "table": {"requests": 2 * args.requests,
                              "l_max": args.l_max, "rows_per_group": rows_per_group}}
    print("(a) loader -> device ...", flush=True)
    result["a_loader_to_device"] = loader_to_device(table, train_cfg, device)
    print("(b) STCA training fed by the loader ...", flush=True)
    result["b_fed_training"] = fed_training(table, train_cfg, model_config, args.steps, device)
    print("(c) one step on the longest histories ...", flush=True)
    result["c_longest_step"] = longest_step(table, min(args.batch_size, 32), model_config, device)
    print("(d) MRLB training on user-days ...", flush=True)
    user_days = str(Path(args.workdir) / "user_day_samples")
    write_synthetic_user_days(user_days, None, SyntheticUserDays(
        num_users=args.user_days, dates=("2026-01-01", "2026-01-02"), l_max=args.l_max,
        mean_hist=min(2_000.0, args.l_max / 4), rows_per_group=max(8, args.user_days // 16),
    ))  # fmt: skip
    grouped_cfg = UserDayLoaderConfig(batch_size=args.mrlb_batch_size, seed=1, length_sampling=sampling,
                                      workers=args.workers, device=str(device), output="groups")  # fmt: skip
    result["d_mrlb"] = mrlb_training(user_days, grouped_cfg, model_config, args.steps, device)
    b, mrlb = result["b_fed_training"], result["d_mrlb"]
    result["checks"] = {
        "loss_finite": b["loss_finite"] and result["c_longest_step"]["loss_finite"] and mrlb["loss_finite"],
        "loss_falls": b["loss_last"] < b["loss_first"],
        "loader_keeps_up": result["a_loader_to_device"]["tokens_per_s"] > b["history_tokens_per_s"],
        "mrlb_matches_rlb": mrlb["mrlb_matches_rlb"],
    }
    out = args.out or RESULTS / ("gpu_check.json" if device.type == "cuda" else "gpu_check-cpu.json")
    path = write_result("gpu_check", result, out)
    for key in ("a_loader_to_device", "b_fed_training", "c_longest_step", "d_mrlb", "checks"):
        print(f"{key}: {result[key]}")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
