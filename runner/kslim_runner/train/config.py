"""Training settings as plain values (converted from the job's TrainSpec by a pure function)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from kslim_runner.data.transforms import AugmentConfig

DEFAULT_ITERATIONS = 1000


@dataclass(frozen=True)
class TrainConfig:
    iterations: int
    batch_size: int = 8
    learning_rate: float = 0.001
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.0005
    warmup_iterations: int = 50
    warmup_start_factor: float = 0.1
    #: "cosine" (down to min_lr_ratio) or "piecewise" (times decay_gamma at each of decay_steps).
    lr_schedule: str = "cosine"
    decay_steps: tuple[int, ...] = ()
    decay_gamma: float = 0.1
    min_lr_ratio: float = 0.05
    ema: bool = True
    ema_decay: float = 0.9998
    grad_clip_norm: float = 10.0
    seed: int = 0
    workers: int = 2
    log_every: int = 10
    checkpoint_every: int = 100
    #: Stop after this many seconds of training (iterations is then an upper bound and the cosine
    #: schedule follows the time spent). For benchmarks; jobs use iterations or epochs.
    time_budget_seconds: float | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: Data-parallel training processes; None: one per visible GPU (train/distributed.py).
    processes: int | None = 1

    def with_overrides(self, **kw: Any) -> TrainConfig:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def iterations_for(epochs: int | None, iterations: int | None, n_images: int, batch_size: int) -> int:
    """Optimizer steps from epochs or iterations (neither: DEFAULT_ITERATIONS)."""
    if iterations is not None:
        return iterations
    if epochs is not None:
        return max(1, epochs * math.ceil(n_images / batch_size))
    return DEFAULT_ITERATIONS


def decay_steps_for(epochs: list[int] | None, n_images: int, batch_size: int) -> tuple[int, ...]:
    """Piecewise milestones are epochs (as in PaddleDetection); the loop counts optimizer steps."""
    per_epoch = max(1, math.ceil(n_images / batch_size))
    return tuple(e * per_epoch for e in epochs or ())


def train_config_from_spec(spec: Any, n_images: int) -> TrainConfig:
    """kslim_api TrainSpec -> TrainConfig (decimals are strings in the spec)."""
    return TrainConfig(
        iterations=iterations_for(spec.epochs, spec.iterations, n_images, spec.batch_size),
        batch_size=spec.batch_size,
        learning_rate=float(spec.learning_rate),
        optimizer=spec.optimizer,
        momentum=float(spec.momentum),
        weight_decay=float(spec.weight_decay),
        warmup_iterations=spec.warmup_iterations,
        warmup_start_factor=float(spec.warmup_start_factor),
        lr_schedule=spec.lr_schedule,
        decay_steps=decay_steps_for(spec.decay_epochs, n_images, spec.batch_size),
        decay_gamma=float(spec.decay_gamma),
        ema=spec.ema,
        grad_clip_norm=float(spec.grad_clip_norm),
        seed=spec.seed,
        workers=spec.workers,
        log_every=spec.log_every_iterations,
        checkpoint_every=spec.checkpoint_every_iterations,
        processes=spec.data_parallel,
    )


def _optional(fine_tune: Any, name: str, convert: Any = None) -> Any:
    value = getattr(fine_tune, name, None)
    return value if value is None or convert is None else convert(value)


def step_train_config(train: Any, fine_tune: Any, n_images: int) -> TrainConfig:
    """spec.train overridden by a step's fineTune: each fineTune field that is set wins. Epoch
    counts (the budget, piecewise milestones) become steps at the step's own batch size; an
    inherited warm-up is capped at a quarter of the step's training, a set one at all of it."""
    base = train_config_from_spec(train, n_images)
    batch = fine_tune.batch_size or base.batch_size
    if fine_tune.epochs is not None or fine_tune.iterations is not None:
        iters = iterations_for(fine_tune.epochs, fine_tune.iterations, n_images, batch)
    else:
        iters = iterations_for(train.epochs, train.iterations, n_images, batch)
    own_schedule = fine_tune.lr_schedule is not None
    epochs = fine_tune.decay_epochs if own_schedule else train.decay_epochs
    warmup = fine_tune.warmup_iterations
    return base.with_overrides(
        iterations=iters,
        batch_size=batch,
        learning_rate=_optional(fine_tune, "learning_rate", float),
        optimizer=fine_tune.optimizer,
        momentum=_optional(fine_tune, "momentum", float),
        weight_decay=_optional(fine_tune, "weight_decay", float),
        warmup_iterations=min(base.warmup_iterations, iters // 4) if warmup is None else min(warmup, iters),
        warmup_start_factor=_optional(fine_tune, "warmup_start_factor", float),
        lr_schedule=fine_tune.lr_schedule,
        decay_steps=decay_steps_for(epochs, n_images, batch),
        decay_gamma=_optional(fine_tune, "decay_gamma", float),
        grad_clip_norm=_optional(fine_tune, "grad_clip_norm", float),
    )


def lr_factor(step: int, total: int, warmup: int, min_ratio: float, start: float = 0.1) -> float:
    """Linear warm-up from `start` to 100% over `warmup` steps, then cosine down to min_ratio."""
    if warmup > 0 and step < warmup:
        return start + (1 - start) * step / warmup
    span = max(total - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def piecewise_factor(
    step: int, warmup: int, milestones: tuple[int, ...], gamma: float, start: float
) -> float:
    """Linear warm-up, then gamma ** (milestones passed): PaddleDetection's LinearWarmup +
    PiecewiseDecay (its warm-up ramps the base rate; milestones count from step 0)."""
    if warmup > 0 and step < warmup:
        return start + (1 - start) * step / warmup
    return float(gamma ** sum(1 for m in milestones if step >= m))


def schedule_factor(cfg: TrainConfig, step: int, total: int | None = None) -> float:
    """The share of cfg.learning_rate that optimizer step `step` uses; `total` (default
    cfg.iterations) is where the cosine ends (a time budget shortens it while training)."""
    if cfg.lr_schedule == "piecewise":
        return piecewise_factor(
            step, cfg.warmup_iterations, cfg.decay_steps, cfg.decay_gamma, cfg.warmup_start_factor
        )
    return lr_factor(
        step, total or cfg.iterations, cfg.warmup_iterations, cfg.min_lr_ratio, cfg.warmup_start_factor
    )
