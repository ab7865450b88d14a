"""Typed model configs (docs/design.md §2): `STCAConfig` (sizes, tables, tasks) configures STCA
and its baselines; `VISTAConfig` adds the VISTA fields to it.

Every model in trainer/ is built from an `STCAConfig` (VISTA from its subclass), so a comparison
changes the encoder and nothing else. trainer/registry.py maps each model name to its config
class. Invalid values or combinations raise `ConfigError` (a `ValueError`) naming the values;
unknown fields are refused naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Self

from schemas.fields import ACTION_BITS, TASKS

ATTENTION_KINDS: tuple[str, ...] = ("shortcut", "sdpa")
SUMMARY_ATTENTION_KINDS: tuple[str, ...] = ("softmax", "linear")  # VISTA summarizer (trainer/vista.py)
HISTORY_TIME_KINDS: tuple[str, ...] = ("token", "bias")  # where the request-relative time enters STCA


class ConfigError(ValueError):
    """A config value (or combination) the model cannot be built with."""


@dataclass
class STCAConfig:
    d: int = 128  # model width: history tokens, target token, attention outputs
    heads: int = 4  # attention heads h; d_h = d / h
    layers: int = 2  # stacked target-to-history layers M
    swiglu_ratio: float = 2.0  # SwiGLU hidden width = swiglu_ratio * d (r = 2 in the paper's follow-up)
    id_dim: int = 64  # width of the id embedding tables (item, author, user), fused into d
    item_buckets: int = 1 << 20  # item ids are hashed into this many rows (shared by history and targets)
    author_buckets: int = 1 << 18  # author ids are hashed into this many rows
    user_buckets: int = 1 << 18  # user ids are hashed into this many rows (user feature of the head)
    action_bits: int = len(ACTION_BITS)  # action bit flags per event; the table has 2**action_bits rows
    time_buckets: int = 64  # log2 buckets of request_ts - hist_ts (seconds); the last one is open-ended
    time_buckets_per_octave: int = 2  # buckets per doubling of the time delta
    use_watch_ratio: bool = True  # add an embedding of watch_ms / duration_ms to each event token
    watch_ratio_buckets: int = 16  # uniform buckets of the watch ratio over [0, watch_ratio_max]
    watch_ratio_max: float = 2.0  # watch ratios above this share the last bucket (replays)
    position_buckets: int = 64  # target positions >= this share the last row
    duration_buckets: int = 32  # log2 buckets of the target's duration (seconds)
    head_hidden: int = 256  # hidden width of the ranking head MLP
    dropout: float = 0.0  # dropout on attention outputs and in the head (0 makes RLB == point-wise exactly)
    # "shortcut": u = (q W_Q) W_K^T, X~ W_K / X~ W_V never built; "sdpa": F.scaled_dot_product_attention.
    # Shortcut is the default: one layer's forward+backward measured 3x (RLB, m=8) and 5x
    # (point-wise) faster than SDPA on CPU at L=2048, d=256 (benchmarks/trainer.py, "attention_paths").
    attention: str = "shortcut"
    tie_query_history_ffn: bool = (
        True  # q(i) uses the same LN(SwiGLU_i) as X~(i), as the paper's notation reads
    )
    # X~(i) = LN(X + SwiGLU_i(X)) (and likewise for q(i)) instead of the paper's LN(SwiGLU_i(X)):
    # the literal form stayed at chance on 1 seed of 3 of the planted tensor task and was no better
    # on the Spark-built one (TokenTransform, benchmarks/quality.py). False: the paper's form.
    history_residual: bool = True
    # Where an event's age (request_ts - hist_ts) enters: "token" adds its embedding to the event
    # token before the history transform (the paper's form), so X~ depends on the request; "bias"
    # keeps X~ request-independent, one X~ per user-day window for all its requests (MRLB,
    # trainer/mrlb.py), and adds a learned per-layer, per-head bias of the age bucket to the
    # attention logits (STCAEncoder). STCA only; the default stays "token" (docs/training.md).
    history_time: str = "token"
    # z also reads LN(masked mean of the event tokens), the history summary mean pooling reads,
    # beside the target-attention outputs (STCAEncoder): measured in docs/length-study.md.
    history_pool: bool = False
    # W_Q = W_K at initialisation, so target attention starts as "look up the target's item in the
    # history" (TargetAttention._init_match_scores; the sanity test needs it). False: PyTorch's
    # independent init, attention starting near uniform (docs/length-study.md measures both on MIND).
    match_prior: bool = True
    tasks: tuple[str, ...] = TASKS  # one logit per task, in the order of RequestBatch.labels' last axis
    task_weights: tuple[float, ...] = field(default_factory=tuple)  # loss weight per task; empty = all 1.0

    _POSITIVE: ClassVar[tuple[str, ...]] = (
        "d", "heads", "layers", "id_dim", "item_buckets", "author_buckets", "user_buckets",
        "action_bits", "time_buckets", "time_buckets_per_octave", "watch_ratio_buckets",
        "position_buckets", "duration_buckets", "head_hidden",
    )  # fmt: skip

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        self.task_weights = tuple(float(w) for w in self.task_weights)
        for name in self._POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.d % self.heads:
            raise ConfigError(f"d must be divisible by heads, got d={self.d}, heads={self.heads}")
        if self.swiglu_ratio <= 0 or int(self.swiglu_ratio * self.d) < 1:
            raise ConfigError(
                f"swiglu_ratio * d must be >= 1, got swiglu_ratio={self.swiglu_ratio}, d={self.d}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.watch_ratio_max <= 0:
            raise ConfigError(f"watch_ratio_max must be > 0, got {self.watch_ratio_max}")
        if self.history_time not in HISTORY_TIME_KINDS:
            raise ConfigError(f"history_time must be one of {HISTORY_TIME_KINDS}, got {self.history_time!r}")
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks must be non-empty and unique, got {self.tasks}")
        if self.task_weights and len(self.task_weights) != len(self.tasks):
            raise ConfigError(
                f"task_weights needs one weight per task: {len(self.tasks)} tasks {self.tasks}, "
                f"got {len(self.task_weights)} weights {self.task_weights}"
            )

    @property
    def head_dim(self) -> int:
        return self.d // self.heads

    @property
    def hidden(self) -> int:
        """SwiGLU hidden width r * d."""
        return int(self.swiglu_ratio * self.d)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def loss_weights(self) -> tuple[float, ...]:
        return self.task_weights or (1.0,) * len(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (tuples become lists); `from_dict` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], model: str | None = None) -> Self:
        """The config of `values` (e.g. parsed JSON); an unknown key is a ConfigError naming it
        (and `model`, the model the values were given for)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            target = f"model {model!r} ({cls.__name__})" if model else cls.__name__
            raise ConfigError(f"unknown config field(s) {unknown} for {target}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class VISTAConfig(STCAConfig):
    """STCA's fields plus VISTA's (trainer/vista.py): the summarizer, the raw suffix, the decoder."""

    summary_tokens: int = 16  # k: learnable seed tokens -> k summary tokens per user (128 in the paper)
    summary_attention: str = "softmax"  # seed-to-history attention: "softmax" or "linear" (elu+1 feature map)
    recent_events: int = 64  # raw most recent events the ranker reads beside the summary (0: summary only)
    recon_items: int = 8  # next history items the summary-conditioned decoder predicts
    # weight of the reconstruction MSE added to the BCE (0 disables it). On the planted tensor task
    # (L = 512, 800 steps, lr 1e-3) VISTA reached AUC 0.678 at 0.01, 0.647 at 0, and stayed at
    # 0.51 at 0.1: the MSE's early gradients outweighed the BCE's and the summary kept the recent
    # items instead of the old interests.
    recon_weight: float = 0.01

    _POSITIVE: ClassVar[tuple[str, ...]] = (*STCAConfig._POSITIVE, "summary_tokens", "recon_items")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.summary_attention not in SUMMARY_ATTENTION_KINDS:
            raise ConfigError(
                f"summary_attention must be one of {SUMMARY_ATTENTION_KINDS}, got {self.summary_attention!r}"
            )
        if not isinstance(self.recent_events, int) or self.recent_events < 0:
            raise ConfigError(f"recent_events must be an int >= 0, got {self.recent_events!r}")
        if self.recon_weight < 0:
            raise ConfigError(f"recon_weight must be >= 0, got {self.recon_weight}")


VISTA_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(VISTAConfig) if f.name not in {g.name for g in fields(STCAConfig)}
)
