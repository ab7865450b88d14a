"""Quantized summary tokens for the `user_summaries` cache (VISTA, docs/design.md §2).

Two formats, both stored as raw row-major bytes plus one fp32 scale per token (row):

* "int8": symmetric per-row int8. scale = max|x_row| / 127, q = round(x / scale) in [-127, 127].
  Round-trip error per element <= scale / 2 = max|x_row| / 254 (plus fp32 rounding), the bound
  the tests pin. -128 is never produced, so negation is exact and the grid is symmetric.
* "fp16": the values cast to float16, scale 1.0. Relative error <= 2**-11 inside fp16's normal
  range (|x| in [6.1e-5, 65504]); values beyond it saturate to +-inf, so `quantize` refuses them.

A k x d summary costs k * d bytes (int8) or 2 k d bytes (fp16), plus 4 k bytes of scales.
"""

from __future__ import annotations

import numpy as np
import torch

from schemas.user_summaries import QUANTIZATION_DTYPES

QUANTIZATIONS: tuple[str, ...] = tuple(QUANTIZATION_DTYPES)  # "int8", "fp16"
INT8_MAX = 127
FP16_MAX = 65504.0
_TORCH_STORAGE = {"int8": torch.int8, "fp16": torch.float16}


class QuantizationError(ValueError):
    """Values or bytes that cannot be (de)quantized as asked."""


def _check_kind(kind: str) -> None:
    if kind not in QUANTIZATIONS:
        raise QuantizationError(f"quantization must be one of {QUANTIZATIONS}, got {kind!r}")


def quantize(x: torch.Tensor, kind: str = "int8") -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., d) float -> (q (..., d) int8 or float16, scale (...) float32), one scale per row."""
    _check_kind(kind)
    x = x.detach().float()
    if not torch.isfinite(x).all():
        raise QuantizationError(
            f"cannot quantize non-finite values ({int((~torch.isfinite(x)).sum())} of {x.numel()})"
        )
    if kind == "fp16":
        largest = float(x.abs().max()) if x.numel() else 0.0
        if largest > FP16_MAX:
            raise QuantizationError(f"fp16 holds |x| <= {FP16_MAX}, got max |x| = {largest}; use int8")
        return x.to(torch.float16), torch.ones(x.shape[:-1], dtype=torch.float32, device=x.device)
    peak = x.abs().amax(dim=-1)  # (...)
    scale = torch.where(peak > 0, peak / INT8_MAX, torch.ones_like(peak))  # an all-zero row keeps scale 1
    q = torch.round(x / scale[..., None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(q (..., d), scale (...)) -> float32 (..., d); works for both formats."""
    return q.float() * scale[..., None].float()


def error_bound(x: torch.Tensor, kind: str = "int8") -> torch.Tensor:
    """Per-element bound on |x - dequantize(quantize(x))|, shaped like x."""
    _check_kind(kind)
    x = x.detach().float()
    if kind == "fp16":
        # Half an fp16 ulp (2**-11 relative) for normal values; subnormals have an absolute step of 2**-24.
        return x.abs() * 2.0**-11 + 2.0**-25
    peak = x.abs().amax(dim=-1, keepdim=True)
    return (peak / (2 * INT8_MAX)).expand_as(x) * (1 + 1e-6) + 1e-12


def to_bytes(q: torch.Tensor) -> list[bytes]:
    """q (N, k, d) -> N row-major byte strings (the `summary` column)."""
    arr = q.detach().cpu().contiguous().numpy()
    return [row.tobytes() for row in arr]


def from_bytes(blobs: list[bytes], kind: str, tokens: int, dim: int) -> torch.Tensor:
    """N byte strings -> q (N, k, d) in the storage dtype of `kind`; checks every length."""
    _check_kind(kind)
    torch_dtype, np_dtype = _TORCH_STORAGE[kind], np.dtype(QUANTIZATION_DTYPES[kind])
    expected = tokens * dim * np_dtype.itemsize
    bad = [i for i, b in enumerate(blobs) if len(b) != expected]
    if bad:
        raise QuantizationError(
            f"summary {bad[0]} has {len(blobs[bad[0]])} bytes, expected {expected} "
            f"({kind}, k={tokens}, d={dim})"
        )
    if not blobs:
        return torch.zeros((0, tokens, dim), dtype=torch_dtype)
    flat = np.frombuffer(b"".join(blobs), dtype=np_dtype).reshape(len(blobs), tokens, dim)
    return torch.from_numpy(flat.copy())
