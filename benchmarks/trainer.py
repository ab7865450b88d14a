"""Trainer benchmark: what RLB and STCA buy, on synthetic request batches.

(a) training step time (forward, backward, AdamW) of STCA in RLB vs point-wise mode at m targets
    and history length L, for both attention paths (target: RLB >= 0.8 m x faster);
(b) forward+backward time and peak memory of STCA vs full self-attention over [history; target]
    at L = 1k .. 10k (targets: >= 20x at 10k; STCA time(10k) / time(1k) <= 11);
(c) CUDA only: bf16 autocast training throughput and model FLOPs utilization (matmul FLOPs counted
    analytically, see `stca_flops`);
(mrlb) MRLB vs RLB on the same requests (trainer/mrlb.py, STCA with history_time="bias"): training
    step throughput in requests/s and the history side alone (event embedding + every layer's
    history transform, forward+backward) for k requests per user-day, at each L (goal: history
    side >= 0.6 k x faster for k <= 5), and where the rest of an MRLB step goes. Not in the
    default --only: it has its own results file.

    python -m benchmarks.trainer --quick          # CPU here, a few minutes -> results/trainer-quick.json
    python -m benchmarks.trainer                  # larger sizes (and (c) on CUDA) -> results/trainer.json
    python -m benchmarks.trainer --only mrlb --threads 1   # -> results/trainer-mrlb[-cuda].json

Every knob has a flag; the seed is fixed; each measurement warms up first and reports the median.
On CPU, memory is the peak resident-set growth during the measured steps (sampled every 2 ms by a
thread); on CUDA it is torch.cuda.max_memory_allocated above the pre-step level."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import psutil
import torch

from benchmarks.common import RESULTS, write_result
from loader import GroupedBatch, RequestBatch
from synthetic.batches import random_batch, user_day_batch
from trainer.config import STCAConfig
from trainer.model import STCA, TargetAttention
from trainer.mrlb import MRLB
from trainer.registry import build_model

# Dense bf16 tensor-core peak per GPU name fragment (no sparsity), for MFU.
PEAK_BF16_TFLOPS: dict[str, float] = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


@dataclass
class Measurement:
    ms: float  # best (minimum) wall time of one step: interference from other processes only adds time
    ms_median: float
    ms_all: list[float]
    peak_mib: float  # NaN until measured

    def as_dict(self) -> dict[str, Any]:
        return {
            "ms": round(self.ms, 2),
            "ms_median": round(self.ms_median, 2),
            "ms_all": [round(x, 2) for x in self.ms_all],
            "peak_mib": None if math.isnan(self.peak_mib) else round(self.peak_mib, 1),
        }


@dataclass
class Case:
    """One thing to time: a model on synthetic batches of the given sizes, in one mode."""

    name: str
    model_name: str
    config: STCAConfig
    batch_size: int
    targets: int
    hist_len: int
    mode: str
    optimizer: bool
    repeats: int
    warmup: int


class PeakRSS:
    """Peak RSS growth (MiB) of this process while active, sampled by a background thread."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s, self.peak, self.base = interval_s, 0, 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def measure_interleaved(
    steps: dict[str, Callable[[], None]],
    repeats: dict[str, int],
    device: torch.device,
    warmup: dict[str, int],
) -> dict[str, Measurement]:
    """Warm every step up, then time them round-robin (case a, case b, case a, ...) so that a burst
    of load from other processes hits all cases alike. On CUDA also each case's peak memory above
    the level before it (on CPU see `probe_cpu_memory`: a long-lived process's RSS keeps freed
    memory and says little)."""
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for name, step in steps.items():
        for _ in range(warmup[name]):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    peaks = dict.fromkeys(steps, math.nan)
    for round_ in range(max(repeats.values())):
        for name, step in steps.items():
            if round_ >= repeats[name]:
                continue
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            t = time.perf_counter()
            step()
            sync()
            times[name].append((time.perf_counter() - t) * 1e3)
            if cuda:
                peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
                peaks[name] = peak if math.isnan(peaks[name]) else max(peaks[name], peak)
    return {name: Measurement(min(ts), statistics.median(ts), ts, peaks[name]) for name, ts in times.items()}


def probe_cpu_memory(specs: list[dict[str, Any]]) -> list[float]:
    """Peak RSS growth (MiB) of one step of each spec, measured in a fresh process. glibc keeps
    freed memory for reuse, so RSS in this long-lived process misses peaks; the child sets
    MALLOC_MMAP_THRESHOLD_ so every tensor buffer over 128 KiB is mmapped and returned on free,
    and measures each case from the RSS after its model and batch are built and warmed up."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    cmd = [sys.executable, "-m", "benchmarks.trainer", "--memory-probe", json.dumps(specs)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return [float(x) for x in json.loads(done.stdout.strip().splitlines()[-1])]


def _memory_probe_main(specs: list[dict[str, Any]]) -> None:
    peaks: list[float] = []
    for spec in specs:
        torch.set_num_threads(spec["threads"])
        torch.manual_seed(spec["seed"])
        config = STCAConfig.from_dict(spec["config"])
        b, m, length = spec["batch_size"], spec["targets"], spec["hist_len"]
        batch = random_batch([length] * b, [m] * b, seed=spec["seed"])
        model = build_model(spec["model"], config)
        step = train_step(model, batch, spec["mode"], torch.device("cpu"), spec["dtype"], spec["optimizer"])
        step()  # warm-up: optimizer state and lazy initialisation are not activation memory
        with PeakRSS() as rss:
            step()
        peaks.append(rss.mib)
        del model, batch, step
    print(json.dumps(peaks))


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: torch.nn.Module,
    batch: RequestBatch,
    mode: str,
    device: torch.device,
    dtype: str,
    optimizer: bool = True,
) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4) if optimizer else None

    def step() -> None:
        with autocast(device, dtype):
            _, loss = model(batch, mode=mode)
        loss.backward()
        if opt is not None:
            opt.step()
        model.zero_grad(set_to_none=True)

    return step


def stca_flops(c: STCAConfig, hist_len: int, targets: int) -> float:
    """Forward matmul FLOPs of STCA for one request (2 per multiply-add); training is ~3x this.
    Elementwise work (LN, softmax, SwiGLU gate) is left out, as MFU conventions do."""
    d, h, e, n, a, hidden = c.d, c.heads, c.id_dim, c.layers, c.head_hidden, c.hidden
    big_l, m = hist_len, targets
    swiglu = 6 * d * hidden  # up (d -> 2 hidden) + down (hidden -> d), per token
    f = big_l * 2 * 3 * e * d + m * 2 * 4 * e * d  # event and target fusions
    f += n * big_l * swiglu  # history transforms: shared by the m targets
    f += n * m * swiglu  # query transforms
    f += sum(m * 2 * (i + 1) * d * d for i in range(1, n))  # query fusions W_C
    if c.attention == "shortcut":
        f += n * m * (4 * 2 * d * d + 2 * 2 * h * big_l * d)  # W_Q, u, W_V, W_O; scores and alpha X~ per head
    else:
        f += n * (big_l * 2 * 2 * d * d + m * 2 * 2 * d * d + m * 2 * 2 * big_l * d)  # K, V; Q, O; scores, AV
    f += m * (2 * (n + 1) * d * d + swiglu)  # output fusion W_Z and SwiGLU
    f += m * 2 * ((2 * d + e) * a + a * a + a * c.num_tasks)  # ranking head
    return float(f)


def model_config(args: argparse.Namespace, **overrides: Any) -> STCAConfig:
    values: dict[str, Any] = {
        "d": args.d,
        "heads": args.heads,
        "layers": args.layers,
        "id_dim": args.id_dim,
        "item_buckets": args.item_buckets,
        "author_buckets": args.item_buckets // 4,
        "user_buckets": args.item_buckets // 4,
        "head_hidden": args.head_hidden,
    }
    return STCAConfig(**{**values, **overrides})


def run_cases(args: argparse.Namespace, device: torch.device, cases: list[Case]) -> dict[str, Measurement]:
    """Time the cases interleaved; on CPU add each one's peak memory from a fresh process."""
    steps: dict[str, Callable[[], None]] = {}
    batches: dict[tuple[int, int, int], RequestBatch] = {}
    for case in cases:
        key = (case.batch_size, case.targets, case.hist_len)
        if key not in batches:
            batches[key] = random_batch(
                [case.hist_len] * case.batch_size, [case.targets] * case.batch_size, seed=args.seed
            ).to(device)
        torch.manual_seed(args.seed)
        model = build_model(case.model_name, case.config).to(device)
        steps[case.name] = train_step(model, batches[key], case.mode, device, args.dtype, case.optimizer)
    result = measure_interleaved(
        steps, {c.name: c.repeats for c in cases}, device, {c.name: c.warmup for c in cases}
    )
    del steps, batches
    if device.type == "cpu" and args.memory:
        specs = [
            {
                "model": case.model_name, "config": case.config.to_dict(), "batch_size": case.batch_size,
                "targets": case.targets, "hist_len": case.hist_len, "mode": case.mode,
                "optimizer": case.optimizer, "dtype": args.dtype, "seed": args.seed,
                "threads": torch.get_num_threads(),
            }
            for case in cases
        ]  # fmt: skip
        for case, peak in zip(cases, probe_cpu_memory(specs), strict=True):
            result[case.name].peak_mib = peak
    for name, r in result.items():
        print(
            f"  {name:32s} best {r.ms:10.1f} ms  median {r.ms_median:10.1f} ms  peak {r.peak_mib:9.1f} MiB",
            flush=True,
        )
    return result


def bench_rlb_vs_pointwise(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """(a): one training step, RLB vs point-wise, per attention path."""
    b, m, length = args.batch_size, args.targets, args.hist_len
    print(f"(a) training step, STCA, B={b} requests x m={m} targets, L={length}", flush=True)
    configs = {attention: model_config(args, attention=attention) for attention in args.attention}
    cases = [
        Case(f"{attention}/{mode}", "stca", config, b, m, length, mode, True, args.repeats, args.warmup)
        for attention, config in configs.items()
        for mode in ("rlb", "pointwise")
    ]
    measured = run_cases(args, device, cases)
    out: dict[str, Any] = {"batch_size": b, "targets": m, "hist_len": length, "dtype": args.dtype}
    for attention, config in configs.items():
        row: dict[str, Any] = {
            mode: measured[f"{attention}/{mode}"].as_dict() for mode in ("rlb", "pointwise")
        }
        row["speedup"] = round(row["pointwise"]["ms"] / row["rlb"]["ms"], 2)
        row["speedup_median"] = round(row["pointwise"]["ms_median"] / row["rlb"]["ms_median"], 2)
        row["target_speedup"] = 0.8 * m
        row["meets_target"] = row["speedup"] >= 0.8 * m
        row["model_flops_rlb"] = 3 * b * stca_flops(config, length, m)
        row["model_flops_pointwise"] = 3 * b * m * stca_flops(config, length, 1)
        row["config"] = config.to_dict()
        out[attention] = row
    for mode in ("rlb", "pointwise"):
        ms = {a: out[a][mode]["ms"] for a in configs}
        out[f"fastest_attention_{mode}"] = min(ms, key=lambda k: ms[k])
    return out


def bench_length_scaling(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """(b): forward+backward of STCA vs full self-attention as L grows (same batch, same config)."""
    b, m = args.scaling_batch_size, args.scaling_targets
    # Small id tables: this section is about the encoder's cost in L, not the (L-independent) tables.
    config = model_config(
        args, d=args.scaling_d, heads=args.scaling_heads, layers=args.scaling_layers,
        item_buckets=4096, author_buckets=1024, user_buckets=1024,
    )  # fmt: skip
    print(f"(b) forward+backward, B={b} x m={m}, d={config.d}, {config.layers} layers", flush=True)
    out: dict[str, Any] = {
        "batch_size": b,
        "targets": m,
        "config": config.to_dict(),
        "dtype": args.dtype,
        "mode": "rlb",
        "rows": [],
    }
    for length in args.lengths:
        cases = [
            Case(f"stca/L={length}", "stca", config, b, m, length, "rlb", False, args.repeats, args.warmup)
        ]
        if length <= args.max_self_attention_len:  # otherwise skipped, never extrapolated
            cases.append(
                Case(
                    f"self_attention/L={length}",
                    "self_attention",
                    config,
                    b,
                    m,
                    length,
                    "rlb",
                    False,
                    args.self_attention_repeats,
                    args.self_attention_warmup,
                )
            )
        measured = run_cases(args, device, cases)
        row: dict[str, Any] = {
            "hist_len": length,
            "stca": measured[f"stca/L={length}"].as_dict(),
            "self_attention": None,
        }
        if f"self_attention/L={length}" in measured:
            row["self_attention"] = measured[f"self_attention/L={length}"].as_dict()
            row["speedup"] = round(row["self_attention"]["ms"] / row["stca"]["ms"], 1)
            sa_mem, stca_mem = row["self_attention"]["peak_mib"], row["stca"]["peak_mib"]
            if sa_mem is not None and stca_mem:
                row["memory_ratio"] = round(sa_mem / stca_mem, 1)
        out["rows"].append(row)
    rows = {r["hist_len"]: r for r in out["rows"]}
    lo, hi = min(rows), max(rows)
    out["stca_time_ratio_max_over_min_len"] = round(rows[hi]["stca"]["ms"] / rows[lo]["stca"]["ms"], 2)
    out["length_ratio"] = hi / lo
    out["meets_target_linear"] = out["stca_time_ratio_max_over_min_len"] <= 1.1 * hi / lo
    if rows[hi].get("speedup") is not None:
        out["speedup_at_max_len"] = rows[hi]["speedup"]
        out["meets_target_speedup"] = rows[hi]["speedup"] >= 20
    return out


def attention_step(
    layer: TargetAttention, inputs: tuple[torch.Tensor, ...], device: torch.device, dtype: str
) -> Callable[[], None]:
    def step() -> None:
        with autocast(device, dtype):
            out = layer(*inputs)
        out.float().sum().backward()

    return step


def bench_attention_paths(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Which attention path is faster: forward+backward of one TargetAttention layer alone, shortcut
    vs SDPA (same weights), interleaved over many repeats. Isolating the layer matters on a shared
    machine: inside a full step the difference is a few percent of the time and drowns in noise."""
    out: dict[str, Any] = {"rows": []}
    shapes = [
        (b, m, args.hist_len) for b, m in ((1, args.targets), (args.targets, 1))
    ]  # RLB, then point-wise rows
    for b, m, length in shapes:
        config = model_config(args)
        layers = {
            kind: TargetAttention(replace(config, attention=kind)).to(device) for kind in ("shortcut", "sdpa")
        }
        layers["sdpa"].load_state_dict(layers["shortcut"].state_dict())
        q = torch.randn(b, m, config.d, device=device, requires_grad=True)
        x = torch.randn(b, length, config.d, device=device, requires_grad=True)
        key_mask = torch.ones(b, length, dtype=torch.bool, device=device)
        has_history = torch.ones(b, dtype=torch.bool, device=device)

        inputs = (q, x, key_mask, has_history)
        steps = {kind: attention_step(layer, inputs, device, args.dtype) for kind, layer in layers.items()}
        measured = measure_interleaved(steps, dict.fromkeys(steps, 10), device, dict.fromkeys(steps, 2))
        row: dict[str, Any] = {
            "queries_per_row": m,
            "rows": b,
            "hist_len": length,
            "d": config.d,
            "heads": config.heads,
        }
        row.update({kind: r.as_dict() for kind, r in measured.items()})
        row["shortcut_speedup"] = round(measured["sdpa"].ms / measured["shortcut"].ms, 2)
        print(
            f"(attention) B={b} m={m} L={length}: shortcut {measured['shortcut'].ms:.2f} ms, "
            f"sdpa {measured['sdpa'].ms:.2f} ms"
        )
        out["rows"].append(row)
    out["faster"] = "shortcut" if all(r["shortcut_speedup"] > 1 for r in out["rows"]) else "sdpa or mixed"
    return out


def bench_bf16_mfu(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """(c): bf16 autocast RLB training throughput and MFU (CUDA only)."""
    config = model_config(args, d=args.gpu_d, heads=args.gpu_heads, layers=args.gpu_layers)
    b, m, length = args.gpu_batch_size, args.targets, args.hist_len
    batch = random_batch([length] * b, [m] * b, seed=args.seed).to(device)
    torch.manual_seed(args.seed)
    model = build_model("stca", config).to(device)
    step = train_step(model, batch, "rlb", device, "bf16")
    r = measure_interleaved({"stca": step}, {"stca": args.repeats}, device, {"stca": args.warmup})["stca"]
    seconds = r.ms_median / 1e3  # a GPU to ourselves: the median is the honest rate
    flops = 3 * b * stca_flops(config, length, m)
    name = torch.cuda.get_device_name(device)
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = flops / seconds / 1e12
    out = {
        "device_name": name,
        "config": config.to_dict(),
        "batch_size": b,
        "targets": m,
        "hist_len": length,
        "step": r.as_dict(),
        "requests_per_s": round(b / seconds, 1),
        "targets_per_s": round(b * m / seconds, 1),
        "history_tokens_per_s": round(b * length / seconds, 1),
        "model_tflops_per_step": round(flops / 1e12, 4),
        "achieved_tflops": round(achieved, 2),
        "peak_bf16_tflops": peak,
        "mfu": round(achieved / peak, 4) if peak else None,
    }
    print(f"(c) bf16 {name}: {r.ms_median:.1f} ms/step, {achieved:.1f} TFLOP/s, MFU {out['mfu']}", flush=True)
    return out


def mrlb_step(net: MRLB, batch: GroupedBatch, device: torch.device, dtype: str) -> Callable[[], None]:
    """One MRLB training step (forward, backward, AdamW), as `train_step` is for the other modes."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step() -> None:
        with autocast(device, dtype):
            _, loss = net(batch)
        loss.backward()
        opt.step()
        net.zero_grad(set_to_none=True)

    return step


def history_side_step(
    model: STCA, events: dict[str, torch.Tensor], device: torch.device, dtype: str
) -> Callable[[], None]:
    """Forward+backward of the history side alone: event tokens and every layer's X~(i) over the
    (rows, L) events (the requests' histories for RLB, the user-day windows for MRLB)."""

    def step() -> None:
        with autocast(device, dtype):
            x = model.events.tokens(events, None)  # (rows, L, d)
            out = sum(t(x).float().mean() for t in model.encoder.history_transforms)
        assert isinstance(out, torch.Tensor)
        out.backward()
        model.zero_grad(set_to_none=True)

    return step


def profile_step(step: Callable[[], None], top: int = 8) -> dict[str, Any]:
    """One step under torch.profiler (after the caller's warm-up): the forward's record_function
    regions (trainer/model.py's labels) and the ops with the most self time, in ms."""
    regions = ("embed", "stca.history_transform", "stca.target_attention", "stca.query_transform",
               "stca.query_fusion", "stca.output_fusion", "head", "loss")  # fmt: skip
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    by_name = {e.key: e for e in events}
    ops = sorted((e for e in events if e.key not in regions), key=lambda e: -e.self_cpu_time_total)
    return {
        "forward_regions_ms": {
            r: round(by_name[r].cpu_time_total / 1e3, 1) for r in regions if r in by_name
        },
        "top_self_ops_ms": {e.key: round(e.self_cpu_time_total / 1e3, 1) for e in ops[:top]},
    }


def bench_mrlb(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """(mrlb): MRLB vs RLB on the same requests: args.mrlb_requests requests per step, k per
    user-day, each with exactly L events and m targets, args.mrlb_gap new events between two
    requests of a day (so a window holds L + (k - 1) * gap events). Same weights in both modes
    (MRLB and RLB give the same loss, tests/test_mrlb.py).

    Per L, every step is timed in one interleaved round-robin. RLB's shapes do not depend on k
    (R requests x L events x m targets), so its history side is timed once per L, and its whole
    step warms up once (k = 1) and is timed args.repeats times at k = 1 and once at each other k
    (the CPU time at L = 10k is mostly RLB: R x L tokens through the history side)."""
    config = model_config(args, history_time="bias", attention="shortcut")
    r, m, ks = args.mrlb_requests, args.targets, args.mrlb_k
    out: dict[str, Any] = {"requests_per_step": r, "targets": m, "gap_events": args.mrlb_gap,
                           "dtype": args.dtype, "config": config.to_dict(), "rows": []}  # fmt: skip
    bad = [k for k in ks if r % k]
    if bad:
        raise SystemExit(f"--mrlb-requests {r} is not a multiple of k = {bad} (--mrlb-k)")
    for length in args.mrlb_lengths:
        steps: dict[str, Callable[[], None]] = {}
        repeats: dict[str, int] = {}
        warmup: dict[str, int] = {}
        batches: dict[int, GroupedBatch] = {}
        torch.manual_seed(args.seed)
        base = build_model("stca", config).to(device)
        for k in ks:
            grouped = user_day_batch([k] * (r // k), l_max=length, max_targets=m, min_targets=m,
                                     first_events=(length, length), num_items=args.item_buckets,
                                     gap_events=(args.mrlb_gap, args.mrlb_gap), seed=args.seed)  # fmt: skip
            requests = grouped.to_request_batch().to(device)
            windows = {n: v.to(device) for n, v in grouped.padded_windows()[0].items()}
            batches[k] = grouped = grouped.to(device)
            model, rlb_model = build_model("stca", config).to(device), build_model("stca", config).to(device)
            model.load_state_dict(base.state_dict())
            rlb_model.load_state_dict(base.state_dict())
            assert isinstance(model, STCA)
            steps[f"mrlb/{k}"] = mrlb_step(MRLB(model), grouped, device, args.dtype)
            steps[f"rlb/{k}"] = train_step(rlb_model, requests, "rlb", device, args.dtype)
            steps[f"history_mrlb/{k}"] = history_side_step(model, windows, device, args.dtype)
            repeats |= {f"mrlb/{k}": args.repeats, f"history_mrlb/{k}": args.repeats}
            warmup |= {f"mrlb/{k}": args.warmup, f"history_mrlb/{k}": args.warmup}
            repeats[f"rlb/{k}"] = args.repeats if k == ks[0] else 1
            warmup[f"rlb/{k}"] = args.warmup if k == ks[0] else 0
            if k == ks[0]:
                history = {name: getattr(requests, name) for name in windows}  # (R, L) per field
                steps["history_rlb"] = history_side_step(model, history, device, args.dtype)
                repeats["history_rlb"], warmup["history_rlb"] = args.repeats, args.warmup
        print(f"(mrlb) L={length}: k in {ks}, {r} requests x m={m} per step", flush=True)
        t = measure_interleaved(steps, repeats, device, warmup)
        for k in ks:
            grouped = batches[k]
            row: dict[str, Any] = {
                "hist_len": length, "k": k, "user_days": r // k,
                "history_tokens": grouped.num_history_tokens, "window_tokens": grouped.num_window_tokens,
                "mrlb": t[f"mrlb/{k}"].as_dict(), "rlb": t[f"rlb/{k}"].as_dict(),
                "history_mrlb": t[f"history_mrlb/{k}"].as_dict(), "history_rlb": t["history_rlb"].as_dict(),
                "requests_per_s_mrlb": round(r / t[f"mrlb/{k}"].ms * 1e3, 2),
                "requests_per_s_rlb": round(r / t[f"rlb/{k}"].ms * 1e3, 2),
                "step_speedup": round(t[f"rlb/{k}"].ms / t[f"mrlb/{k}"].ms, 2),
                "history_speedup": round(t["history_rlb"].ms / t[f"history_mrlb/{k}"].ms, 2),
                "token_ratio": round(grouped.num_history_tokens / grouped.num_window_tokens, 2),
                "goal_history_speedup": round(0.6 * k, 1) if k <= 5 else None,
                # What an MRLB step spends beyond its history side: the per-request side
                # (queries, age bias, attention over the window, head, loss; forward and
                # backward) and AdamW.
                "mrlb_rest_ms": round(t[f"mrlb/{k}"].ms - t[f"history_mrlb/{k}"].ms, 1),
            }  # fmt: skip
            row["meets_goal"] = None if k > 5 else row["history_speedup"] >= 0.6 * k
            print(f"  k={k}: requests/s MRLB {row['requests_per_s_mrlb']} RLB {row['requests_per_s_rlb']} "
                  f"(x{row['step_speedup']}), history side x{row['history_speedup']}",
                  flush=True)  # fmt: skip
            if k == max(ks):
                row["mrlb_profile"] = profile_step(steps[f"mrlb/{k}"])
            out["rows"].append(row)
        del steps, batches
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks.trainer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="CPU-sized run (a few minutes) -> trainer-quick.json")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--dtype", choices=["fp32", "bf16"], default=None, help="default: bf16 on CUDA, fp32 on CPU"
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", dest="memory", action="store_false", help="CPU: skip the memory probes")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # internal: one CPU memory probe
    p.add_argument(
        "--only",
        nargs="+",
        choices=["attention", "a", "b", "c", "mrlb"],
        default=["attention", "a", "b", "c"],
        help="sections to run; mrlb (its own results file) only when named",
    )
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    # model
    p.add_argument("--d", type=int, default=None)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--id-dim", type=int, default=64)
    # Dense AdamW touches every table row each step whatever the batching (production updates
    # embeddings sparsely), so small tables keep (a) about the model rather than the optimizer.
    p.add_argument("--item-buckets", type=int, default=1 << 14)
    p.add_argument("--head-hidden", type=int, default=256)
    p.add_argument("--attention", nargs="+", choices=["shortcut", "sdpa"], default=["shortcut", "sdpa"])
    # (a)
    p.add_argument("--batch-size", type=int, default=None, help="(a) requests per batch")
    p.add_argument("--targets", type=int, default=8, help="targets per request m")
    p.add_argument("--hist-len", type=int, default=2048, help="(a)/(c) history length L")
    # (b)
    p.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    p.add_argument("--scaling-batch-size", type=int, default=None)
    p.add_argument("--scaling-targets", type=int, default=None)
    p.add_argument("--scaling-d", type=int, default=None)
    p.add_argument("--scaling-heads", type=int, default=4)
    p.add_argument("--scaling-layers", type=int, default=2)
    p.add_argument("--self-attention-repeats", type=int, default=None)
    p.add_argument("--self-attention-warmup", type=int, default=None)
    p.add_argument("--max-self-attention-len", type=int, default=10_000)
    # (c)
    p.add_argument("--gpu-d", type=int, default=1024)
    p.add_argument("--gpu-heads", type=int, default=16)
    p.add_argument("--gpu-layers", type=int, default=4)
    p.add_argument("--gpu-batch-size", type=int, default=32)
    p.add_argument("--peak-tflops", type=float, default=None, help="override the device's bf16 peak for MFU")
    # (mrlb)
    p.add_argument("--mrlb-requests", type=int, default=10, help="(mrlb) requests per step, k | it")
    p.add_argument("--mrlb-k", type=int, nargs="+", default=[1, 2, 5, 10], help="(mrlb) requests a day")
    p.add_argument("--mrlb-lengths", type=int, nargs="+", default=[2000, 10000], help="(mrlb) lengths L")
    p.add_argument("--mrlb-gap", type=int, default=8, help="(mrlb) new events between two requests of a day")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    # Sizes: --quick fits a 2-core CPU in minutes; the full run is meant for a GPU (or patience).
    defaults = {
        "dtype": "bf16" if cuda else "fp32",
        "warmup": 1 if args.quick else 3,
        "repeats": 3 if args.quick else 10,
        "d": 256 if args.quick else 512,
        "batch_size": 1 if args.quick else 16,
        "scaling_batch_size": 1 if args.quick else 8,
        "scaling_targets": 1 if args.quick else 8,
        "scaling_d": 64 if args.quick else 256,
        "self_attention_repeats": 1 if args.quick else 3,
        # Seconds per step at 10k on CPU: lazy initialisation is noise next to it.
        "self_attention_warmup": 0 if args.quick else 1,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_probe:
        _memory_probe_main(json.loads(args.memory_probe))
        return
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    payload: dict[str, Any] = {
        "args": vars(args),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "notes": [
            "(a) is a full training step (forward, backward, AdamW); (b) is forward+backward without the "
            "optimizer.",
            "(b) runs both models in 'rlb' mode on the same batch; full self-attention has one [history; "
            "target] sequence per target, so it shares nothing across targets. Measured at every length, "
            "never extrapolated.",
            "CPU memory: peak RSS growth over the measured steps (sampled every 2 ms), after warm-up.",
        ],
    }
    if "attention" in args.only:
        payload["attention_paths"] = bench_attention_paths(args, device)
    if "a" in args.only:
        payload["rlb_vs_pointwise"] = bench_rlb_vs_pointwise(args, device)
    if "b" in args.only:
        payload["length_scaling"] = bench_length_scaling(args, device)
    if "c" in args.only and device.type == "cuda":
        payload["bf16_mfu"] = bench_bf16_mfu(args, device)
    if "mrlb" in args.only:
        payload["mrlb_vs_rlb"] = bench_mrlb(args, device)
    payload["wall_s"] = round(time.perf_counter() - started, 1)
    name = "trainer-quick" if args.quick else "trainer"
    if args.only == ["mrlb"]:  # its own file: the other sections' results stay as they were
        name = "trainer-mrlb" if device.type == "cpu" else "trainer-mrlb-cuda"
    path = write_result(name, payload, RESULTS / f"{name}.json")
    print(f"wrote {path} in {payload['wall_s']} s")


if __name__ == "__main__":
    main()
