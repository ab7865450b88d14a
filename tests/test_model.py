"""STCA model: shapes, masking, RLB == point-wise (loss and gradients), shortcut == SDPA, reference values."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from loader import HISTORY_FIELDS, RequestBatch
from synthetic.batches import random_batch, tiny_config
from trainer.config import ConfigError, STCAConfig
from trainer.losses import masked_bce_loss, per_task_bce
from trainer.model import STCA, QueryLayout, TokenTransform, hash_ids, log_buckets, pointwise_batch

pytestmark = pytest.mark.usefixtures("torch_single_thread", "torch_seed")

HIST_LENS = [9, 0, 4, 12]
NUM_TARGETS = [3, 2, 1, 4]






def make_batch(seed: int = 1, **kwargs: object) -> RequestBatch:
    return random_batch(HIST_LENS, NUM_TARGETS, seed=seed, **kwargs)  # type: ignore[arg-type]


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_forward_shapes_and_predict_range() -> None:
    model = STCA(tiny_config())
    batch = make_batch()
    logits, loss = model(batch)
    assert logits.shape == (4, 4, 6)
    assert loss.shape == ()
    assert torch.isfinite(loss)
    probs = model.predict(batch)
    assert probs.shape == (4, 4, 6)
    assert ((probs > 0) & (probs < 1)).all()
    assert model.training  # predict restores the caller's mode
    assert (logits[~batch.target_mask] == 0).all()  # padded targets read 0


@pytest.mark.parametrize("attention", ["shortcut", "sdpa"])
@pytest.mark.parametrize(("tie", "pool"), [(True, True), (True, False), (False, True)])
def test_rlb_and_pointwise_give_same_loss_and_gradients(attention: str, tie: bool, pool: bool) -> None:
    model = STCA(tiny_config(attention=attention, tie_query_history_ffn=tie, history_pool=pool))
    batch = make_batch()
    logits_rlb, loss_rlb = model(batch, mode="rlb")
    loss_rlb.backward()
    g_rlb = grads(model)
    model.zero_grad(set_to_none=True)
    logits_pw, loss_pw = model(batch, mode="pointwise")
    loss_pw.backward()
    g_pw = grads(model)
    torch.testing.assert_close(loss_pw, loss_rlb)
    torch.testing.assert_close(logits_pw, logits_rlb, rtol=1e-5, atol=1e-6)
    assert g_rlb.keys() == g_pw.keys()
    assert len(g_rlb) == len(list(model.parameters()))  # every parameter takes part
    for name in g_rlb:
        torch.testing.assert_close(g_pw[name], g_rlb[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for n, g in g_rlb.items() if "attentions" in n)


def test_pointwise_batch_repeats_history_per_real_target() -> None:
    batch = make_batch()
    flat, (rows, cols) = pointwise_batch(batch)
    assert flat.size == sum(NUM_TARGETS)
    assert rows.tolist() == [0, 0, 0, 1, 1, 2, 3, 3, 3, 3]
    assert cols.tolist() == [0, 1, 2, 0, 1, 0, 0, 1, 2, 3]
    torch.testing.assert_close(flat.hist_item_id[1], batch.hist_item_id[0])
    torch.testing.assert_close(flat.labels[:, 0], batch.labels[batch.target_mask])


def test_loss_averages_over_all_real_targets_not_per_request() -> None:
    # Request 0 has 1 target, request 1 has 3: per-target mean weighs request 1 three times.
    logits = torch.tensor([[[2.0], [9.0], [9.0]], [[-1.0], [0.5], [3.0]]])  # (B=2, M=3, T=1)
    labels = torch.tensor([[[1.0], [0.0], [0.0]], [[0.0], [1.0], [1.0]]])
    mask = torch.tensor([[True, False, False], [True, True, True]])

    def bce(x: float, y: float) -> float:
        p = torch.sigmoid(torch.tensor(x))
        return float(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))

    expected = (bce(2.0, 1) + bce(-1.0, 0) + bce(0.5, 1) + bce(3.0, 1)) / 4
    assert per_task_bce(logits, labels, mask).item() == pytest.approx(expected, rel=1e-6)
    weighted = masked_bce_loss(
        torch.cat([logits, logits], -1), torch.cat([labels, labels], -1), mask, [1.0, 0.5]
    )
    assert weighted.item() == pytest.approx(1.5 * expected, rel=1e-6)


def test_changing_padded_values_changes_nothing() -> None:
    model = STCA(tiny_config())
    batch = make_batch()
    g = torch.Generator().manual_seed(7)
    hist_pad, tgt_pad = ~batch.hist_mask, ~batch.target_mask
    noisy = {
        name: torch.where(
            hist_pad, torch.randint(1, 10**6, getattr(batch, name).shape, generator=g), getattr(batch, name)
        ).to(getattr(batch, name).dtype)
        for name in HISTORY_FIELDS
    }
    noisy_targets = {
        name: torch.where(
            tgt_pad, torch.randint(1, 10**6, getattr(batch, name).shape, generator=g), getattr(batch, name)
        ).to(getattr(batch, name).dtype)
        for name in ("tgt_item_id", "tgt_author_id", "tgt_position", "tgt_duration_ms")
    }
    labels = torch.where(tgt_pad[..., None], 1.0 - batch.labels, batch.labels)
    other = replace(batch, labels=labels, **noisy, **noisy_targets)
    assert not torch.equal(other.hist_item_id, batch.hist_item_id)
    logits, loss = model(batch)
    logits2, loss2 = model(other)
    torch.testing.assert_close(logits2, logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss2, loss, rtol=0, atol=1e-6)


def test_output_does_not_depend_on_events_beyond_hist_len_nor_on_the_batch() -> None:
    model = STCA(tiny_config())
    full = random_batch([12, 12, 12, 12], NUM_TARGETS, seed=3)
    cut = replace(full, hist_len=torch.tensor(HIST_LENS))  # real events after hist_len, then masked
    logits = model.predict(cut)
    for b, (n, m) in enumerate(zip(HIST_LENS, NUM_TARGETS, strict=True)):
        alone = replace(
            cut,
            request_id=[cut.request_id[b]],
            **{k: v[b : b + 1] for k, v in cut.tensors().items()},
        ).with_history_suffix(n)  # this request by itself, L = its own length
        assert alone.hist_item_id.shape[1] == n
        torch.testing.assert_close(model.predict(alone)[0, :m], logits[b, :m], rtol=1e-5, atol=1e-6)
    # ... and the events that are in the history do matter.
    changed = replace(cut, hist_item_id=cut.hist_item_id.flip(1))
    assert not torch.allclose(model.predict(changed)[0], logits[0])


def test_empty_history_gives_finite_outputs_and_gradients() -> None:
    for attention in ("shortcut", "sdpa"):
        model = STCA(tiny_config(attention=attention))
        for batch in (make_batch(), random_batch([0, 0], [2, 1], seed=2)):
            logits, loss = model(batch)
            loss.backward()
            assert torch.isfinite(logits).all() and torch.isfinite(loss)
            assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
            model.zero_grad(set_to_none=True)
    # L = 0 for the whole batch (shape (B, 0)), still the same as point-wise.
    batch = random_batch([0, 0], [2, 1], seed=2)
    assert batch.hist_item_id.shape == (2, 0)
    torch.testing.assert_close(model(batch, "pointwise")[1], model(batch, "rlb")[1])


@pytest.mark.parametrize("pool", [True, False])
def test_shortcut_matches_sdpa_outputs_and_gradients(pool: bool) -> None:
    shortcut = STCA(tiny_config(attention="shortcut", history_pool=pool))
    sdpa = STCA(tiny_config(attention="sdpa", history_pool=pool))
    sdpa.load_state_dict(shortcut.state_dict())
    batch = make_batch()
    out_a, loss_a = shortcut(batch)
    out_b, loss_b = sdpa(batch)
    loss_a.backward()
    loss_b.backward()
    torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-6)
    g_a, g_b = grads(shortcut), grads(sdpa)
    for name in g_a:
        torch.testing.assert_close(g_b[name], g_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fixed_seed_reference_values() -> None:
    """Pins init, hashing, bucketing and the forward; update the numbers only for a deliberate change."""
    model = STCA(tiny_config(layers=2))
    batch = make_batch()
    logits, loss = model(batch)
    assert loss.item() == pytest.approx(REFERENCE_LOSS, rel=1e-5)
    torch.testing.assert_close(logits[0, 0], torch.tensor(REFERENCE_LOGITS), rtol=1e-4, atol=1e-5)


REFERENCE_LOSS = 4.181911945343018  # shared item projection P and W_Q = W_K init (issue 19)
REFERENCE_LOGITS = [0.005036, -0.017124, -0.023416, 0.003773, 0.126354, 0.140432]


@pytest.mark.parametrize("residual", [True, False])
def test_token_transform_is_ln_of_swiglu_with_or_without_the_residual(residual: bool) -> None:
    transform = TokenTransform(16, 32, residual=residual)
    x = torch.randn(3, 5, 16)
    expected = transform.norm(transform.ffn(x) + (x if residual else 0.0))
    torch.testing.assert_close(transform(x), expected)
    encoder = STCA(tiny_config(history_residual=residual)).encoder
    assert all(t.residual == residual for t in [*encoder.history_transforms, *encoder.query_transforms])


def test_hash_ids_is_deterministic_in_range_and_spreads() -> None:
    ids = torch.tensor([0, 1, 2, 10**12, -5, 2**62])
    h = hash_ids(ids, 1000)
    assert h.tolist() == HASH_REFERENCE
    assert ((h >= 0) & (h < 1000)).all()
    consecutive = hash_ids(torch.arange(10_000), 1000)
    assert consecutive.unique().numel() > 990  # consecutive ids do not collide in runs


HASH_REFERENCE = [0, 782, 397, 352, 499, 496]


def test_log_buckets() -> None:
    ms = torch.tensor([0, 999, 1000, 3000, 10**12, -5])
    assert log_buckets(ms, unit=1000.0, per_octave=2, buckets=16).tolist() == [0, 1, 2, 4, 15, 0]


def test_invalid_mode_and_config_raise_with_values() -> None:
    model = STCA(tiny_config())
    with pytest.raises(ValueError, match=r"mode must be one of \('rlb', 'pointwise'\), got 'flat'"):
        model(make_batch(), mode="flat")
    with pytest.raises(ConfigError, match="d must be divisible by heads, got d=10, heads=4"):
        STCAConfig(d=10, heads=4)
    with pytest.raises(ConfigError, match="attention must be one of .*got 'flash'"):
        STCAConfig(attention="flash")
    with pytest.raises(ConfigError, match="task_weights needs one weight per task: 6 tasks"):
        STCAConfig(task_weights=(1.0,))
    with pytest.raises(ConfigError, match="layers must be a positive int, got 0"):
        STCAConfig(layers=0)


def test_match_prior_ties_w_q_and_w_k_at_init_and_history_pool_widens_w_z() -> None:
    """match_prior (default) starts W_Q = W_K, target attention as a lookup of the target's item;
    without it they start independent. history_pool adds LN(mean X) to W_Z's input."""
    for layer in STCA(tiny_config()).encoder.attentions:
        torch.testing.assert_close(layer.q_proj.weight, layer.k_proj.weight)
    for layer in STCA(tiny_config(match_prior=False)).encoder.attentions:
        assert not torch.equal(layer.q_proj.weight, layer.k_proj.weight)
    d, n = tiny_config().d, tiny_config().layers
    assert STCA(tiny_config()).encoder.output_fusion.in_features == (n + 1) * d
    pooled = STCA(tiny_config(history_pool=True))
    assert pooled.encoder.output_fusion.in_features == (n + 2) * d
    batch = make_batch()
    x, x_t = pooled.events(batch), pooled.targets(batch)
    z = pooled.encoder.pooled_history(x, QueryLayout.per_request(batch.hist_mask), x_t)  # (B, M, d)
    mean = (x * batch.hist_mask[..., None]).sum(1) / batch.hist_mask.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(z[0, 0], pooled.encoder.pool_norm(mean[0]))  # type: ignore[misc]
    assert (z[1] == 0).all()  # request 1 has no history
