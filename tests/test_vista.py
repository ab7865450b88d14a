"""VISTA model pieces: quantization bounds, the summarizer, the reconstruction loss, the ranker on
full histories (joint training) and on cached summaries (CompactBatch), and `--model vista`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from synthetic.batches import random_batch, tiny_config
from synthetic.tables import SyntheticSamples, write_synthetic_samples
from trainer.config import ConfigError, VISTAConfig
from trainer.quantize import QuantizationError, dequantize, error_bound, from_bytes, quantize, to_bytes
from trainer.registry import MODELS, build_model
from trainer.vista import VistaRanker, VistaSummarizer, compact_batch

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("torch_single_thread", "torch_seed")]






def vista_config(**kw: object) -> VISTAConfig:
    values: dict[str, object] = {"summary_tokens": 4, "recent_events": 6, "recon_items": 3, "layers": 2}
    values.update(kw)
    return VISTAConfig.from_dict({**tiny_config().to_dict(), **values})


# -- quantization -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["int8", "fp16"])
def test_quantize_round_trip_error_is_within_the_bound(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, 32, generator=g) * torch.logspace(-4, 3, 64)[:, None, None]  # rows over 7 decades
    x[0, 0] = 0.0  # an all-zero row
    x[1, 1, 5] = 1e3  # one outlier in a row
    q, scale = quantize(x, kind)
    assert q.dtype == (torch.int8 if kind == "int8" else torch.float16) and scale.shape == (64, 8)
    err = (dequantize(q, scale) - x).abs()
    assert bool((err <= error_bound(x, kind)).all()), float((err - error_bound(x, kind)).max())
    if kind == "int8":
        assert int(q.abs().max()) <= 127
        assert bool((err <= x.abs().amax(-1, keepdim=True) / 254 * (1 + 1e-6) + 1e-12).all())
        assert bool((dequantize(q, scale)[0, 0] == 0).all())


def test_quantize_bytes_round_trip_and_errors() -> None:
    x = torch.randn(5, 4, 16)
    for kind in ("int8", "fp16"):
        q, _ = quantize(x, kind)
        blobs = to_bytes(q)
        assert len(blobs[0]) == 4 * 16 * (1 if kind == "int8" else 2)
        assert torch.equal(from_bytes(blobs, kind, 4, 16), q)
    with pytest.raises(QuantizationError, match=r"summary 0 has 64 bytes, expected 128 \(fp16, k=4, d=16\)"):
        from_bytes(to_bytes(quantize(x, "int8")[0]), "fp16", 4, 16)
    with pytest.raises(QuantizationError, match="non-finite"):
        quantize(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(QuantizationError, match=r"fp16 holds \|x\| <= 65504.0, got max \|x\| = 100000.0"):
        quantize(torch.tensor([[1e5]]), "fp16")
    with pytest.raises(QuantizationError, match="quantization must be one of"):
        quantize(x, "int4")


# -- summarizer --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["softmax", "linear"])
def test_summarizer_shapes_masking_and_empty_histories(kind: str) -> None:
    config = vista_config(summary_attention=kind)
    model = VistaRanker(config).eval()  # type: ignore[arg-type]
    batch = random_batch([0, 5, 17], [1, 1, 1], max_hist=20, seed=3)
    s = model.summarize(batch)
    assert s.shape == (3, 4, config.d) and bool(torch.isfinite(s).all())  # type: ignore[attr-defined]
    # No history: the learned empty summary.
    torch.testing.assert_close(s[0], model.summarizer.empty().detach())
    # Padding carries no information: scribbling on positions >= hist_len changes nothing.
    noisy = replace(batch, hist_item_id=torch.where(batch.hist_mask, batch.hist_item_id, 777),
                    hist_action=torch.where(batch.hist_mask, batch.hist_action, 5))
    torch.testing.assert_close(model.summarize(noisy), s)
    # A row's summary depends on its own events only.
    row: dict[str, object] = {
        name: t[1:2, :5] if t.dim() > 1 else t[1:2] for name, t in batch.tensors().items()
    }
    alone = replace(batch, request_id=batch.request_id[1:2], **row)  # type: ignore[arg-type]
    torch.testing.assert_close(model.summarize(alone)[0], s[1], atol=1e-5, rtol=1e-5)


def test_linear_seed_attention_matches_a_plain_reference() -> None:
    config = vista_config(summary_attention="linear", heads=2)
    summarizer = VistaSummarizer(config)
    att = summarizer.attention
    x = torch.randn(2, 7, config.d)  # type: ignore[attr-defined]
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    out = att(summarizer.seeds, x, mask)
    h, dh = config.heads, config.head_dim  # type: ignore[attr-defined]
    for b in range(2):
        n = int(mask[b].sum())
        q = att.q_proj(summarizer.seeds).view(-1, h, dh)
        k = att.k_proj(x[b, :n]).view(n, h, dh)
        v = att.v_proj(x[b, :n]).view(n, h, dh)
        heads = []
        for j in range(h):
            fq, fk = torch.nn.functional.elu(q[:, j]) + 1, torch.nn.functional.elu(k[:, j]) + 1
            w = fq @ fk.T  # (k, n)
            heads.append((w @ v[:, j]) / (w.sum(-1, keepdim=True) + 1e-6))
        torch.testing.assert_close(out[b], att.out_proj(torch.cat(heads, -1)), atol=1e-5, rtol=1e-4)


# -- ranker -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["softmax", "linear"])
def test_vista_forward_shapes_padding_and_no_nan_on_empty_histories(kind: str) -> None:
    model = build_model("vista", vista_config(summary_attention=kind))
    assert isinstance(model, VistaRanker) and MODELS["vista"].model_class is VistaRanker
    for hist in ([0, 0, 0], [0, 2, 30]):
        batch = random_batch(hist, [3, 1, 2], seed=4)
        logits, loss = model(batch)
        assert logits.shape == (3, 3, 6) and bool(torch.isfinite(logits).all()) and bool(torch.isfinite(loss))
        assert bool((logits[~batch.target_mask] == 0).all())
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()
        _, pointwise_loss = model(batch, "pointwise")
        assert bool(torch.isfinite(pointwise_loss))


def test_vista_training_decreases_the_loss_on_a_fixed_batch() -> None:
    model = build_model("vista", vista_config())
    batch = random_batch([40, 12, 0, 25], [4, 2, 3, 1], seed=5)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        _, loss = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_reconstruction_loss_is_added_with_its_weight() -> None:
    batch = random_batch([30, 20], [2, 2], seed=6)
    torch.manual_seed(1)
    with_recon = build_model("vista", vista_config(recon_weight=1.0))
    torch.manual_seed(1)
    without = build_model("vista", vista_config(recon_weight=0.0))
    assert with_recon.reconstruction is not None and without.reconstruction is None  # type: ignore[union-attr]
    # Same cut (recon_items <= recent_events), same shared weights: the losses differ by the MSE only.
    without.load_state_dict(
        {k: v for k, v in with_recon.state_dict().items() if not k.startswith("reconstruction.")}
    )
    logits_a, loss_a = with_recon(batch)
    logits_b, loss_b = without(batch)
    torch.testing.assert_close(logits_a, logits_b)
    assert float(loss_a.detach()) > float(loss_b.detach())


def test_config_rejects_bad_vista_values() -> None:
    with pytest.raises(
        ConfigError, match=r"summary_attention must be one of \('softmax', 'linear'\), got 'quasi'"
    ):
        vista_config(summary_attention="quasi")
    with pytest.raises(ConfigError, match="summary_tokens must be a positive int, got 0"):
        vista_config(summary_tokens=0)
    with pytest.raises(ConfigError, match="recent_events must be an int >= 0, got -1"):
        vista_config(recent_events=-1)


# -- cached summaries -----------------------------------------------------------------------------------
compact_from = compact_batch


def test_cached_summaries_reproduce_joint_training_logits() -> None:
    model = build_model("vista", vista_config(recent_events=5, recon_items=5)).eval()
    assert isinstance(model, VistaRanker)
    batch = random_batch([40, 3, 0, 25], [2, 2, 1, 3], seed=7)
    joint = model.predict(batch)
    cached = model.predict(compact_from(model, batch, "fp16"))  # type: ignore[arg-type]
    torch.testing.assert_close(cached, joint, atol=5e-3, rtol=0)
    cached8 = model.predict(compact_from(model, batch, "int8"))  # type: ignore[arg-type]
    torch.testing.assert_close(cached8, joint, atol=3e-2, rtol=0)


def test_cached_path_trains_the_ranker_only_and_handles_missing_summaries() -> None:
    model = build_model("vista", vista_config())
    assert isinstance(model, VistaRanker)
    batch = random_batch([10, 0, 6], [2, 1, 2], seed=8)
    compact = compact_from(model, batch, "int8")
    compact = replace(compact, has_summary=torch.tensor([True, False, True]))
    logits, loss = model(compact)
    assert logits.shape == (3, 2, 6) and bool(torch.isfinite(loss))
    loss.backward()
    assert model.summarizer.attention.k_proj.weight.grad is None  # the cache is frozen data
    assert model.encoder.attentions[0].q_proj.weight.grad is not None
    with pytest.raises(ValueError, match="request-level only"):
        model(compact, "pointwise")
    wrong = replace(compact, summary=compact.summary[:, :, :4], summary_scale=compact.summary_scale)
    with pytest.raises(
        ValueError, match=r"cached summaries are \(4, 4\) \(k, d\); this model expects \(4, 16\)"
    ):
        model(wrong)


def test_train_main_runs_the_vista_model(tmp_path: Path) -> None:
    from trainer.train import main

    table = str(tmp_path / "request_samples")
    write_synthetic_samples(table, SyntheticSamples(num_requests=32, dates=("2026-01-01", "2026-01-02"),
                                                    l_max=120, mean_hist=40, max_targets=3,
                                                    rows_per_group=16))
    model_config = {"d": 16, "heads": 2, "layers": 1, "id_dim": 8, "head_hidden": 16, "item_buckets": 1024,
                    "author_buckets": 256, "user_buckets": 256, "summary_tokens": 4, "recent_events": 8}
    result = main(["--table", table, "--out", str(tmp_path / "run"), "--train-to", "2026-01-01",
                   "--eval-date", "2026-01-02", "--steps", "3", "--batch-size", "8", "--length-max", "120",
                   "--length-min", "8", "--length-mean", "30", "--eval-lengths", "120", "--device", "cpu",
                   "--model", "vista", "--checkpoint-every", "3", "--model-config", json.dumps(model_config)])
    assert result["train"]["steps"] == 3 and result["model_config"]["summary_tokens"] == 4
    assert "auc" in result["eval"]["120"]["finish"]
    resumed = main(["--table", table, "--out", str(tmp_path / "run"), "--train-to", "2026-01-01",
                    "--steps", "4", "--batch-size", "8", "--length-max", "120", "--length-min", "8",
                    "--length-mean", "30", "--device", "cpu", "--model", "vista",
                    "--resume", str(tmp_path / "run" / "checkpoint.pt"),
                    "--model-config", json.dumps(model_config)])
    assert resumed["train"]["steps"] == 4
