"""STCA (and VISTA) models, training loop and evaluation."""

from .config import STCAConfig
from .registry import MODELS, build_model

__all__ = ["MODELS", "STCAConfig", "build_model"]
