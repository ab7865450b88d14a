"""How fast does each model learn the planted topic signal, and which part of STCA slows it down?

Trains one model on benchmarks.vista's planted tensor batches (topic = item id % 10, old events
lean to the user's two topics, the newest `--clean` carry nothing) and prints the held-out finish
AUC every 100 steps. Ablations switch parts of STCA off to find the obstacle:

    python -m benchmarks.learning_probe --model stca --length 256 --clean 128
    python -m benchmarks.learning_probe --model mean_pool --no-pool-norm      # mean of raw tokens
    python -m benchmarks.learning_probe --model stca --layers 1 --no-history-transform --query-scale 0

Session 4 (300 steps, L = 256, clean 128; ad-hoc runs of the same task with item_buckets 16,384):
DIN 0.696, mean pooling 0.591 (0.684 without its LayerNorm), STCA 0.50-0.52 with every ablation
here, including uniform attention over raw tokens; at L = 64, clean 0, STCA 0.65. With this
script's config: mean pooling without its norm 0.568 at 200 steps, STCA 0.500 at 300, and also
0.510 at L = 64, clean 0: whether STCA takes off in 300 steps depends on the seed and small
config changes, where DIN and mean pooling learn every time.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from benchmarks.vista import planted_batch
from trainer.metrics import auc
from trainer.registry import build_model
from trainer.synthetic import tiny_config


def main(argv: list[str] | None = None) -> list[tuple[int, float]]:
    p = argparse.ArgumentParser(prog="benchmarks.learning_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="stca")
    p.add_argument("--length", type=int, default=256, help="history events per request")
    p.add_argument("--clean", type=int, default=128, help="newest events without the signal")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--query-scale", type=float, default=1.0, help="multiply W_Q at init (0: uniform attention)")
    p.add_argument("--out-scale", type=float, default=1.0, help="multiply W_O at init")
    p.add_argument("--no-history-transform", action="store_true", help="STCA: X~ = X (no LN(SwiGLU))")
    p.add_argument("--no-pool-norm", action="store_true", help="mean_pool: no LayerNorm after pooling")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = tiny_config(d=32, heads=2, layers=args.layers, id_dim=32, head_hidden=64, item_buckets=512, user_buckets=1)
    model = build_model(args.model, config)
    encoder = getattr(model, "encoder", None)
    with torch.no_grad():
        for attention in getattr(encoder, "attentions", []):
            attention.q_proj.weight.mul_(args.query_scale)
            attention.out_proj.weight.mul_(args.out_scale)
    if args.no_history_transform and encoder is not None:
        encoder.history_transforms = nn.ModuleList(nn.Identity() for _ in encoder.attentions)
    if args.no_pool_norm:
        model.norm = nn.Identity()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    held_out = planted_batch(512, args.length, 8, args.clean, seed=10_000)
    curve, t0 = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        _, loss = model(planted_batch(32, args.length, 8, args.clean, seed=step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            score = auc(model.predict(held_out)[..., 0].flatten(), held_out.labels[..., 0].flatten())
            curve.append((step, round(score, 4)))
            print(f"step {step}: loss {loss.item():.3f}, AUC {score:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return curve


if __name__ == "__main__":
    main()
