"""STCA (and VISTA) models, training loop and evaluation."""

from .config import ConfigError, STCAConfig, VISTAConfig
from .registry import MODELS, ModelSpec, build_model, model_config, parse_model_config

__all__ = ["MODELS", "ConfigError", "ModelSpec", "STCAConfig", "VISTAConfig", "build_model", "model_config",
           "parse_model_config"]  # fmt: skip
