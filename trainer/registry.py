"""Models by name, so training and evaluation code picks one from a flag: `build_model("stca", config)`."""

from __future__ import annotations

from trainer.baselines import DIN, MeanPool, SelfAttention
from trainer.config import STCAConfig
from trainer.model import STCA, Ranker
from trainer.vista import VistaRanker

MODELS: dict[str, type[Ranker]] = {
    "stca": STCA,
    "mean_pool": MeanPool,
    "din": DIN,
    "self_attention": SelfAttention,
    "vista": VistaRanker,
}


def build_model(name: str, config: STCAConfig) -> Ranker:
    """A fresh model; every one shares the forward signature `(batch, mode) -> (logits, loss)`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name](config)
