"""Length-extrapolative training (docs/design.md §2): per request, keep a random most-recent suffix.

L = L_min + s (L_max - L_min), s ~ Beta(alpha, beta), rounded to a multiple of 8. A U-shaped
Beta (alpha < 1) with beta = alpha (L_max - L_mean) / (L_mean - L_min) has mean L_mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.constants import DEFAULT_L_MAX

ROUND_TO = 8  # lengths are multiples of 8 (tensor-core friendly shapes)


@dataclass(frozen=True)
class LengthSampling:
    l_min: int = 64  # shortest sampled length
    l_max: int = DEFAULT_L_MAX  # longest sampled length (the serving length)
    mean: float = 2_000.0  # target mean sampled length
    alpha: float = 0.2  # Beta alpha; U-shaped (short and full both common) when alpha and beta are < 1

    def __post_init__(self) -> None:
        if not 0 < self.l_min < self.l_max:
            raise ValueError(f"need 0 < l_min < l_max, got l_min={self.l_min}, l_max={self.l_max}")
        if not self.l_min < self.mean < self.l_max:
            raise ValueError(f"need l_min < mean < l_max, got {self.l_min} < {self.mean} < {self.l_max}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")

    @property
    def beta(self) -> float:
        return self.alpha * (self.l_max - self.mean) / (self.mean - self.l_min)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n lengths (int64), multiples of ROUND_TO within [l_min, l_max] (both rounded to 8)."""
        s = rng.beta(self.alpha, self.beta, size=n)
        raw = self.l_min + s * (self.l_max - self.l_min)
        lo = max(ROUND_TO, int(np.ceil(self.l_min / ROUND_TO)) * ROUND_TO)
        hi = max(lo, int(self.l_max // ROUND_TO) * ROUND_TO)
        return np.clip(np.rint(raw / ROUND_TO).astype(np.int64) * ROUND_TO, lo, hi)
