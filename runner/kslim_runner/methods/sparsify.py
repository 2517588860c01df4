"""sparsify: unstructured pruning with PaddleSlim's dygraph pruners. With a GMP schedule
(GMPUnstructuredPruner, PaddleDetection's UnstructuredPruner) the zeroed share rises during
training; without, the weights are pruned to the ratio at once (UnstructuredPruner) and fine-tuned
with the zeros held (PaddleSlim masks the weights before every forward). The model keeps its shapes:
the row reports the sparsity measured in the exported model, and its latency shows that Paddle
Inference's dense CPU kernels do not skip zeros."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kslim_api.contract import Reason
from kslim_api.v1alpha1 import GMP_MIN_ITERATIONS_PER_STEP, SparsifyStep
from paddleslim.dygraph import GMPUnstructuredPruner, UnstructuredPruner

from kslim_runner.atomic import write_json
from kslim_runner.errors import UserError
from kslim_runner.methods.common import (
    export_row_model,
    fine_tune,
    fine_tune_config,
    model_config,
    quiet_paddleslim,
    save_weights,
    source_detector,
    step_key,
    train_images,
)
from kslim_runner.methods.sparsify_params import (
    exported_sparsity,
    model_sparsity,
    select_params,
    skip_function,
)
from kslim_runner.models.base import Detector
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import MethodDescriptor, register_method
from kslim_runner.pipeline.models import build_model, load_row_model, load_weights
from kslim_runner.pipeline.state import Row
from kslim_runner.train.checkpoint import load_checkpoint
from kslim_runner.train.config import iterations_for
from kslim_runner.train.loop import Forward, LossFn, default_loss
from kslim_runner.train.nodes.leader import active, not_multi_node

#: What the row says about speed (Paddle Inference 2.6 has no sparse conv kernels on CPU).
DENSE_RUNTIME_NOTE = (
    "Paddle Inference runs the zeroed weights through dense kernels (oneDNN on CPU): the sparsity "
    "saves no time there, only in a runtime with sparse kernels or in compressed storage"
)


def sparsify_label(cfg: SparsifyStep) -> str:
    how = "GMP" if cfg.gmp is not None else "one-shot"
    what = ", 1x1 convs" if cfg.params_type == "conv1x1" else ""
    return f"Unstructured pruning ({float(cfg.ratio):.0%} {how}{what})"


def _iterations_per_epoch(ctx: RunContext, cfg: SparsifyStep, images: int) -> int:
    batch = cfg.fine_tune.batch_size or ctx.spec.train.batch_size
    return iterations_for(1, None, images, batch)


def _schedule(ctx: RunContext, cfg: SparsifyStep, images: int) -> tuple[int, int, int]:
    """(stable, pruning, tuning) iterations; a UserError when PaddleSlim's GMP would refuse them."""
    assert cfg.gmp is not None
    stable, pruning, tuning = cfg.gmp.lengths(_iterations_per_epoch(ctx, cfg, images))
    if pruning <= GMP_MIN_ITERATIONS_PER_STEP * cfg.gmp.pruning_steps:
        raise UserError(
            f"sparsify.gmp: the pruning phase is {pruning} iterations ({cfg.gmp.pruning} {cfg.gmp.unit} of "
            f"{images} training images), but PaddleSlim's GMP needs more than "
            f"{GMP_MIN_ITERATIONS_PER_STEP} per pruning step ({cfg.gmp.pruning_steps} steps): lengthen "
            "gmp.pruning or lower gmp.pruningSteps",
            reason=Reason.INVALID_SPEC,
        )
    return stable, pruning, tuning


#: Why sparsify's fine-tuning runs in the job's own process: data-parallel workers would rebuild the
#: model without the pruner's masks.
IN_PROCESS = "data-parallel workers would rebuild the model without the pruner's masks"


def check_sparsify(ctx: RunContext, cfg: SparsifyStep) -> None:
    """Patterns that match nothing, GMP schedules PaddleSlim refuses, and a multi-node job that would
    fine-tune (in one process only), before anything trains."""
    select_params(build_model(model_config(ctx)), cfg)
    images = train_images(ctx)
    if cfg.gmp is not None and images is not None:
        _schedule(ctx, cfg, images)
    leader = active()
    if leader is not None and (cfg.gmp is not None or cfg.fine_tune.iterations != 0):
        raise not_multi_node(
            "sparsify", leader.nodes.count, IN_PROCESS, "set its fineTune.iterations to 0 (without gmp)"
        )


def make_pruner(det: Detector, cfg: SparsifyStep, chosen: list[str], schedule: Any, start: int) -> Any:
    """The PaddleSlim pruner on det (mask buffers and forward pre-hooks added to det's layers)."""
    common = {
        "ratio": float(cfg.ratio),
        "skip_params_func": skip_function(chosen),
        "local_sparsity": cfg.local_sparsity,
    }
    # PaddleSlim prints a line per parameter while it adds the masks
    with contextlib.redirect_stdout(io.StringIO()), quiet_paddleslim():
        if cfg.gmp is None:
            pruner = UnstructuredPruner(det, mode="ratio", **common)
        else:
            pruner = GMPUnstructuredPruner(det, configs=gmp_configs(cfg, schedule, start), **common)
    keep_masks_out_of_state(det)
    return pruner


def gmp_configs(cfg: SparsifyStep, schedule: Any, start: int) -> dict[str, Any]:
    assert cfg.gmp is not None
    stable, pruning, tuning = schedule
    return {
        "stable_iterations": stable,
        "pruning_iterations": pruning,
        "tunning_iterations": tuning,
        "resume_iteration": start,
        "pruning_steps": cfg.gmp.pruning_steps,
        "initial_ratio": float(cfg.gmp.initial_ratio),
    }


def keep_masks_out_of_state(det: Detector) -> None:
    """PaddleSlim's masks are layer buffers; kept out of the state dict they stay out of the EMA
    (its float copies cannot take the masks' bool values), checkpoints and saved weights; a resumed
    run recomputes them from the weights."""
    for _, layer in det.named_sublayers(include_self=True):
        for name in [n for n in layer._buffers if n.endswith("_mask")]:
            layer.register_buffer(name, layer._buffers[name], persistable=False)


def prune_to_target(pruner: Any, ratio: float) -> None:
    """Masks at the final ratio from the current weights (after EMA, or a schedule cut short), then
    the weights multiplied by them: the sparsity the row promises, exactly."""
    pruner.ratio = ratio
    UnstructuredPruner.step(pruner)  # the plain (non-GMP) step: thresholds and masks at pruner.ratio
    pruner.update_params()


def gmp_loss(pruner: Any) -> LossFn:
    """The detection loss, with the GMP schedule advanced once per optimizer step (before its
    forward, whose pre-hooks apply the masks), as PaddleDetection's trainer steps its pruner."""

    def loss(detector: Detector, batch: Sequence[Any], forward: Forward | None = None) -> Any:
        pruner.step()
        return default_loss(detector, batch, forward)

    return loss


def load_sparse(model: dict[str, Any], path_of: Callable[[str], Path]) -> Detector:
    """model: {"kind": "sparsify", "source": the model that was pruned, "weights": its sparse weights}
    (same shapes as the source: no layout to apply)."""
    det = load_row_model(model["source"], path_of)
    load_weights(det, path_of(model["weights"]))
    det.eval()
    return det


def run_sparsify(ctx: RunContext, cfg: SparsifyStep, source: Row) -> Row:
    key = step_key(ctx, "sparsify")
    work = ctx.stage_dir(key)
    det = source_detector(ctx, source, "sparsify")
    chosen = select_params(det, cfg)
    images = len(ctx.index("train"))
    tune = cfg.fine_tune
    schedule = None
    notes: list[str] = []
    if cfg.gmp is not None:
        schedule = _schedule(ctx, cfg, images)
        if tune.epochs is None and tune.iterations is None:
            tune = tune.model_copy(update={"iterations": sum(schedule)})
    tcfg = fine_tune_config(ctx, tune)
    if tcfg.processes != 1:
        tcfg = tcfg.with_overrides(processes=1)
        notes.append("trained in one process: data parallel does not carry the pruner's masks")
    ckpt = load_checkpoint(work / "checkpoint")
    start = ckpt.step if ckpt is not None and ckpt.meta.get("iterations") == tcfg.iterations else 0
    pruner = make_pruner(det, cfg, chosen, schedule, start)
    if cfg.gmp is None:
        with quiet_paddleslim():
            prune_to_target(pruner, float(cfg.ratio))
    loss_fn = default_loss if cfg.gmp is None else gmp_loss(pruner)
    result = (
        fine_tune(ctx, det, tcfg, work, "sparsify", loss_fn=loss_fn, in_process=IN_PROCESS)
        if tcfg.iterations > 0
        else None
    )
    if schedule is not None and tcfg.iterations < schedule[0] + schedule[1]:
        notes.append(
            f"training ({tcfg.iterations} iterations) ended before the GMP schedule reached the ratio "
            f"({schedule[0] + schedule[1]}): pruned to it at the end"
        )
    with quiet_paddleslim():
        prune_to_target(pruner, float(cfg.ratio))
    weights = work / "model.pdparams"
    save_weights(det, weights)
    model = {"kind": "sparsify", "source": source.model, "weights": ctx.rel(weights)}
    # exported from a clean rebuild: PaddleSlim's pre-hooks do not trace
    export_dir = export_row_model(ctx, load_sparse(model, ctx.path), key)
    in_model = model_sparsity(det, chosen)
    exported = exported_sparsity(ctx.path(export_dir), chosen)
    write_json(work / "sparsity.json", {"model": in_model.to_dict(), "exported": exported.to_dict()})
    print(
        f"kslim: sparsify: {exported.ratio:.1%} of {exported.weights} weights in {exported.params} "
        "params are zero in the exported model",
        flush=True,
    )
    notes = [
        f"exported model: {exported.ratio:.1%} of the {exported.weights} weights of {exported.params} pruned "
        f"params are zero (least sparse param {exported.least:.1%}); shapes, params and GFLOPs unchanged",
        DENSE_RUNTIME_NOTE,
        *notes,
    ]
    if result is None:
        notes.append("no fine-tuning in this step (fineTune.iterations 0)")
    return Row(
        key,
        "sparsify",
        sparsify_label(cfg),
        model=model,
        export_dir=export_dir,
        train=None if result is None else result.to_dict(),
        notes=notes,
    )


register_method(
    MethodDescriptor("sparsify", SparsifyStep, run_sparsify, check=check_sparsify, restore=load_sparse)
)
