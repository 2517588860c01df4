"""The training loop: resumable from the last checkpoint, EMA, progress lines, throughput figures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import paddle
from kslim_api.contract import Reason

from kslim_runner.data.coco import CocoIndex
from kslim_runner.data.loader import check_batch, train_loader
from kslim_runner.data.transforms import AugmentConfig
from kslim_runner.errors import UserError
from kslim_runner.models.base import Detector
from kslim_runner.progress import Progress
from kslim_runner.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from kslim_runner.train.config import TrainConfig, schedule_factor
from kslim_runner.train.ema import ModelEMA
from kslim_runner.train.optim import build_optimizer

Forward = Callable[[paddle.Tensor], Any]


class LossFn(Protocol):
    """The loss of one batch for the layer being trained. `forward` runs that layer's forward pass:
    the layer itself by default, its DataParallel wrapper in a data-parallel worker (the wrapper's
    forward is what makes backward all-reduce the gradients)."""

    def __call__(
        self, detector: Detector, batch: Sequence[paddle.Tensor], forward: Forward | None = None
    ) -> paddle.Tensor: ...


WARM_STEPS = 5  # steps left out of the step-time figure (loader start-up, first kernels)


@dataclass(frozen=True)
class Rank:
    """This process's place in data-parallel training: rank 0 of 1 when training alone. Rank 0 reports
    progress, keeps the EMA and writes checkpoints; every rank loads the checkpoint on resume."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: paddle.Tensor) -> float:
        """The mean over ranks (the same float on every rank, so they all take the same branch)."""
        if self.world == 1:
            return float(value)
        v = value.detach().astype("float32").reshape([1])
        paddle.distributed.all_reduce(v)
        return float(v) / self.world

    def min_int(self, value: int) -> int:
        if self.world == 1:
            return value
        v = paddle.to_tensor([value], dtype="int64")
        paddle.distributed.all_reduce(v, op=paddle.distributed.ReduceOp.MIN)
        return int(v)


@dataclass
class TrainResult:
    iterations: int
    start_step: int
    steps_run: int
    final_loss: float | None
    seconds: float
    step_seconds: float | None
    images_per_second: float | None
    """All ranks' images per second (the global batch per step)."""
    ranks: int = 1
    """Training processes (data-parallel world size)."""
    nodes: int = 1
    """Machines (pods) they ran on."""
    global_batch: int | None = None
    """Images per optimizer step over all ranks (the batch size is per process)."""
    worker_steps: list[int | None] | None = None
    """With several ranks: the steps each ran, by global rank, as each counted them (None: a rank
    that did not report)."""

    def to_dict(self) -> dict:
        return asdict(self)


def default_loss(detector: Detector, batch: Any, forward: Forward | None = None) -> paddle.Tensor:
    """The model's own detection loss: a PaddleDetection model computes it from the batch dict its
    reader made; a built-in detector from (image, gt_box, gt_label, ...)."""
    if isinstance(batch, dict):
        return (forward or detector)(batch)["loss"]
    image, gt_box, gt_label = batch[0], batch[1], batch[2]
    return detector.loss((forward or detector)(image), gt_box, gt_label)


class BatchSource(Protocol):
    """Where a model's training batches come from, in the runner's seeded, resumable order."""

    def loader(
        self, *, batch_size: int, seed: int, workers: int, start_step: int, steps: int, rank: int, world: int
    ) -> Any: ...

    def check(self, batch: Any) -> None: ...


@dataclass
class CocoBatches:
    """A built-in detector's batches: the runner's own transforms and YOLO targets."""

    index: CocoIndex
    size: int
    augment: AugmentConfig | None = None

    def loader(
        self, *, batch_size: int, seed: int, workers: int, start_step: int, steps: int, rank: int, world: int
    ) -> Any:
        return train_loader(
            self.index,
            self.size,
            batch_size,
            seed,
            workers=workers,
            start_step=start_step,
            steps=steps,
            augment=self.augment,
            rank=rank,
            world=world,
        )

    def check(self, batch: Any) -> None:
        check_batch(self.index, batch[3])


def batch_source(detector: Detector, index: CocoIndex, augment: AugmentConfig | None) -> BatchSource:
    """A PaddleDetection model reads through its config's own TrainReader transforms."""
    from kslim_runner.zoo.config import ZooSource

    config = detector.config
    if isinstance(config, ZooSource):
        from kslim_runner.zoo.reader import ReaderBatches

        return ReaderBatches(config, index)
    return CocoBatches(index, config.input_size, augment)


def _restore(
    detector: Detector, opt: paddle.optimizer.Optimizer, ema: ModelEMA | None, ckpt: Checkpoint
) -> None:
    detector.set_state_dict(ckpt.model)
    opt.set_state_dict(ckpt.optimizer)
    if ema is not None and ckpt.ema is not None:
        ema.set_state_dict(ckpt.ema)


def _check_finite(value: float, stage: str, step: int, cfg: TrainConfig) -> None:
    if not math.isfinite(value):
        raise UserError(
            f"{stage}: the loss became {value} at step {step}; lower train.learningRate "
            f"(now {cfg.learning_rate}) or raise warmupIterations",
            reason=Reason.TRAINING_DIVERGED,
        )


def train_in_process(
    detector: Detector,
    index: CocoIndex,
    cfg: TrainConfig,
    workdir: Path,
    *,
    stage: str,
    loss_fn: LossFn = default_loss,
    rank: Rank | None = None,
) -> TrainResult:
    """The loop itself, in this process; `rank` is set in each data-parallel worker."""
    # The optimizer names its accumulators (conv2d_0.w_0_moment1_0, ...) from a global counter; a
    # fresh scope makes them the same in every run, so a checkpoint's optimizer state loads back.
    with paddle.utils.unique_name.guard():
        return _train(detector, index, cfg, workdir, stage=stage, loss_fn=loss_fn, rank=rank or Rank())


def _train(
    detector: Detector,
    index: CocoIndex,
    cfg: TrainConfig,
    workdir: Path,
    *,
    stage: str,
    loss_fn: LossFn,
    rank: Rank,
) -> TrainResult:
    ckpt_dir = Path(workdir) / "checkpoint"
    paddle.seed(cfg.seed)
    opt = build_optimizer(detector, cfg)
    ema = ModelEMA(detector, cfg.ema_decay) if cfg.ema and rank.main else None
    start = 0
    ckpt = load_checkpoint(ckpt_dir)
    if ckpt is not None and ckpt.meta.get("iterations") == cfg.iterations:
        _restore(detector, opt, ema, ckpt)
        start = min(ckpt.step, cfg.iterations)
        if rank.main:
            print(
                f"kslim: {stage}: resuming from the checkpoint at step {start} of {cfg.iterations}",
                flush=True,
            )
    detector.train()
    progress = Progress(stage, cfg.iterations, every=cfg.log_every, start=start, quiet=not rank.main)
    loss_val: float | None = None
    t0 = time.monotonic()
    t_steady: float | None = None
    steady_from = step = start
    total = cfg.iterations
    if start < total:
        source = batch_source(detector, index, cfg.augment)
        loader = source.loader(
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            workers=cfg.workers,
            start_step=start,
            steps=cfg.iterations,
            rank=rank.rank,
            world=rank.world,
        )
        for batch in loader:
            source.check(batch)
            opt.set_lr(cfg.learning_rate * schedule_factor(cfg, step, total))
            loss = loss_fn(detector, batch)
            loss.backward()
            opt.step()
            opt.clear_grad()
            step += 1
            if ema is not None:
                ema.update(detector)
            if t_steady is None and step - start >= min(WARM_STEPS, cfg.iterations - start):
                t_steady, steady_from = time.monotonic(), step
            if cfg.time_budget_seconds is not None and t_steady is not None and step > steady_from:
                # the schedule's length follows the budget: the steps that fit at the current pace
                pace = (time.monotonic() - t_steady) / (step - steady_from)
                left = cfg.time_budget_seconds - (time.monotonic() - t0)
                # ranks must agree on the length, or one would wait for the others forever
                total = rank.min_int(max(step, min(cfg.iterations, step + int(left / pace))))
                progress.total = total
            if step % cfg.log_every == 0 or step >= total or step % cfg.checkpoint_every == 0:
                loss_val = rank.mean(loss)
                _check_finite(loss_val, stage, step, cfg)
            progress.update(step, loss=loss_val)
            if step >= total:
                break
            if step % cfg.checkpoint_every == 0 and rank.main:
                save_checkpoint(
                    ckpt_dir,
                    Checkpoint(
                        step=step,
                        model=detector.state_dict(),
                        optimizer=opt.state_dict(),
                        ema=ema.state_dict() if ema is not None else None,
                        meta={"iterations": cfg.iterations, "stage": stage},
                    ),
                )
    progress.close()
    seconds = time.monotonic() - t0
    steady = step - steady_from
    step_s = (time.monotonic() - t_steady) / steady if t_steady is not None and steady > 0 else None
    if ema is not None:
        detector.set_state_dict(ema.weights())
    detector.eval()
    return TrainResult(
        iterations=step,
        start_step=start,
        steps_run=step - start,
        final_loss=loss_val,
        seconds=round(seconds, 3),
        step_seconds=None if step_s is None else round(step_s, 4),
        images_per_second=None if step_s is None else round(cfg.batch_size * rank.world / step_s, 2),
        ranks=rank.world,
        global_batch=cfg.batch_size * rank.world,
    )
