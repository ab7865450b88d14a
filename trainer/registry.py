"""Models by name, each with its config class, so training, evaluation and checkpoints pick one
from a flag: `build_model("stca", STCAConfig(d=64))`, `parse_model_config("vista", json_dict)`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, NamedTuple

from trainer.baselines import DIN, MeanPool, SelfAttention
from trainer.config import ConfigError, STCAConfig, VISTAConfig
from trainer.model import STCA, Ranker
from trainer.vista import VistaRanker


class ModelSpec(NamedTuple):
    config_class: type[STCAConfig]
    model_class: type[Ranker]


MODELS: dict[str, ModelSpec] = {
    "stca": ModelSpec(STCAConfig, STCA),
    "mean_pool": ModelSpec(STCAConfig, MeanPool),
    "din": ModelSpec(STCAConfig, DIN),
    "self_attention": ModelSpec(STCAConfig, SelfAttention),
    "vista": ModelSpec(VISTAConfig, VistaRanker),
}


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]


def parse_model_config(name: str, values: Mapping[str, Any]) -> STCAConfig:
    """`values` (e.g. `--model-config` JSON) as model `name`'s config class; a key that class
    lacks is a ConfigError naming the key and the model."""
    return model_spec(name).config_class.from_dict(values, model=name)


def model_config(name: str, config: STCAConfig | None = None) -> STCAConfig:
    """`config` as model `name`'s config class: None gives its defaults; an STCAConfig given to a
    model with a subclass (VISTA) keeps its values and takes the subclass's defaults for the rest,
    so one shared config builds every model of a comparison."""
    cls = model_spec(name).config_class
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if issubclass(cls, type(config)):
        return cls(**asdict(config))
    raise ConfigError(f"model {name!r} takes a {cls.__name__}, got a {type(config).__name__}")


def build_model(name: str, config: STCAConfig | None = None) -> Ranker:
    """A fresh model; every one shares the forward signature `(batch, mode) -> (logits, loss)`."""
    return model_spec(name).model_class(model_config(name, config))
