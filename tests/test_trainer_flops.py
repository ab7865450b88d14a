"""The benchmark's analytic FLOP count (used for MFU) agrees with torch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.trainer import stca_flops
from synthetic.batches import random_batch, tiny_config
from trainer.model import STCA


@pytest.mark.parametrize("attention", ["shortcut", "sdpa"])
def test_stca_flops_match_torch_flop_counter(attention: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(attention=attention)
    model = STCA(config)
    b, length, m = 3, 40, 5
    batch = random_batch([length] * b, [m] * b, seed=0)
    with FlopCounterMode(display=False) as counter:
        model(batch)
    counted = counter.get_total_flops()
    if attention == "sdpa":
        # torch's counter has no formula for the CPU SDPA kernel: add its scores + AV matmuls.
        counted += b * config.layers * 2 * 2 * m * length * config.d
    assert counted == b * stca_flops(config, length, m)
