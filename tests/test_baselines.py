"""Baselines share STCA's contract: shapes, RLB == point-wise, masking, no NaN without history."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from synthetic.batches import random_batch, tiny_config
from trainer.baselines import DIN, MeanPool, SelfAttention
from trainer.registry import MODELS, build_model

pytestmark = pytest.mark.usefixtures("torch_single_thread", "torch_seed")

HIST_LENS = [9, 0, 4, 12]
NUM_TARGETS = [3, 2, 1, 4]






# VISTA adds a per-request reconstruction loss that point-wise mode would count once per target,
# so its two modes are different objectives by design; every other model must match exactly.
@pytest.mark.parametrize("name", sorted(n for n in MODELS if n != "vista"))
def test_rlb_and_pointwise_give_same_loss_and_gradients(name: str) -> None:
    model = build_model(name, tiny_config())
    batch = random_batch(HIST_LENS, NUM_TARGETS, seed=1)
    logits, loss = model(batch, mode="rlb")
    assert logits.shape == (4, 4, 6)
    loss.backward()
    g_rlb = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    logits_pw, loss_pw = model(batch, mode="pointwise")
    loss_pw.backward()
    torch.testing.assert_close(loss_pw, loss)
    torch.testing.assert_close(logits_pw, logits, rtol=1e-5, atol=1e-6)
    assert len(g_rlb) == len(list(model.parameters()))
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, g_rlb[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padding_and_empty_history_are_harmless(name: str) -> None:
    model = build_model(name, tiny_config())
    batch = random_batch(HIST_LENS, NUM_TARGETS, seed=1)
    garbage = torch.where(batch.hist_mask, batch.hist_item_id, 123_456)
    logits, loss = model(batch)
    logits2, _ = model(replace(batch, hist_item_id=garbage))
    torch.testing.assert_close(logits2, logits, rtol=0, atol=1e-6)
    loss.backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    empty = random_batch([0, 0], [2, 1], seed=2)
    assert torch.isfinite(model(empty)[1])
    # The history matters (for every model): a different history gives different scores.
    shuffled = replace(
        batch, hist_item_id=batch.hist_item_id.flip(1), hist_author_id=batch.hist_author_id.flip(1)
    )
    assert not torch.allclose(model(shuffled)[0][0], logits[0])


def test_self_attention_masks_padding_but_skips_the_mask_when_full() -> None:
    model = SelfAttention(tiny_config(layers=1))
    full = random_batch([6, 6], [2, 2], seed=4)
    padded = replace(
        full,
        **{
            k: torch.cat([v, torch.full_like(v[:, :3], 7)], 1)
            for k, v in full.tensors().items()
            if k.startswith("hist_") and k != "hist_len"
        },
    )  # 3 padded events after hist_len
    assert padded.hist_item_id.shape == (2, 9)
    torch.testing.assert_close(model(padded)[0], model(full)[0], rtol=1e-5, atol=1e-6)


def test_registry_builds_each_model_and_rejects_unknown_names() -> None:
    assert isinstance(build_model("mean_pool", tiny_config()), MeanPool)
    assert isinstance(build_model("din", tiny_config()), DIN)
    with pytest.raises(
        ValueError,
        match=r"unknown model 'hstu'; expected one of "
        r"\['din', 'mean_pool', 'self_attention', 'stca', 'vista'\]",
    ):
        build_model("hstu", tiny_config())
