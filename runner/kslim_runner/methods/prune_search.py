"""Ratios for a FLOPs target: a scale r found by bisection (each probe pruned for real, measured,
and restored) so that pruning every selected conv by r x its factor removes the requested share of
conv GFLOPs. Factors are 1 (a uniform ratio) or come from PaddleSlim's sensitivity analysis (how
much a proxy score drops when each conv alone is pruned by 10%..90%)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paddle
from kslim_api.contract import Reason
from paddle import nn
from paddleslim.analysis import dygraph_flops

from kslim_runner.errors import UserError
from kslim_runner.methods.prune_select import MAX_RATIO, Prunable, max_safe_ratio
from kslim_runner.pipeline.models import is_zoo
from kslim_runner.train.loop import default_loss
from kslim_runner.zoo.build import sample_inputs

#: PaddleSlim traces the model with a constant input built by `assign`, which refuses more than 2**20
#: values (3 x 591 x 591); pruning groups do not depend on the input size, and conv FLOPs shares are
#: the same at any multiple of 32 (every level's map scales alike), so larger models trace at this.
MAX_TRACE_SIZE = 320
#: Bisection stops when the FLOPs share is this close to the target (or after MAX_PROBES probes).
TOLERANCE = 0.004
MAX_PROBES = 14


def trace_size(input_size: int) -> int:
    return min(input_size, MAX_TRACE_SIZE)


def trace_inputs(det: nn.Layer, size: int) -> Any:
    """What PaddleSlim traces the model with: an input shape for a built-in detector, PaddleDetection's
    input dict for its models (as its own Pruner does)."""
    if is_zoo(det):
        return [sample_inputs(size)]
    return [1, 3, size, size]


def conv_flops(det: nn.Layer, size: int) -> float:
    """Conv multiply-adds of one image (the report's GFLOPs convention), in FLOPs."""
    return float(dygraph_flops(det, trace_inputs(det, size), only_conv=True))


def flops_share(pruner: Any, det: nn.Layer, ratios: dict[str, float], size: int, base: float) -> float:
    """Share of conv FLOPs removed by pruning with `ratios`; the model is restored afterwards."""
    plan = pruner.prune_vars(ratios, 0)
    try:
        return 1.0 - conv_flops(det, size) / base
    finally:
        plan.restore(det)


def _ratios(convs: Sequence[Prunable], r: float, factors: dict[str, float]) -> dict[str, float]:
    """ratio of conv i = r x factor_i, capped so every conv keeps a filter (and at MAX_RATIO)."""
    return {c.name: min(r * factors.get(c.name, 1.0), MAX_RATIO, max_safe_ratio(c.channels)) for c in convs}


def check_reachable(
    pruner: Any,
    det: nn.Layer,
    convs: Sequence[Prunable],
    target: float,
    size: int,
    factors: dict[str, float] | None = None,
) -> tuple[float, float, float]:
    """(largest useful scale, FLOPs share it removes, base FLOPs); a user error when even that
    share, every conv pruned as far as it can go while keeping a filter, misses the target."""
    factors = factors or {}
    base = conv_flops(det, size)
    hi = max(min(MAX_RATIO, max_safe_ratio(c.channels)) / factors.get(c.name, 1.0) for c in convs)
    share_hi = flops_share(pruner, det, _ratios(convs, hi, factors), size, base)
    if share_hi + TOLERANCE < target:
        raise UserError(
            f"prune.targetFlopsReduction {target:g} cannot be reached: pruning the selected convs as far "
            f"as possible (keeping a filter in each) removes {share_hi:.1%} of the GFLOPs; lower the "
            "target or select more convs with prune.params",
            reason=Reason.INVALID_SPEC,
        )
    return hi, share_hi, base


def search_ratios(
    pruner: Any,
    det: nn.Layer,
    convs: Sequence[Prunable],
    target: float,
    size: int,
    factors: dict[str, float] | None = None,
    on_probe: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], float]:
    """(ratios, FLOPs share removed) for the scale r closest to `target`, each conv pruned by
    r x its factor (all 1: a uniform ratio). `on_probe(n)` after each of the at most
    1 + MAX_PROBES probes (each a real prune, trace and restore: seconds to minutes on big models)."""
    factors = factors or {}
    report = on_probe or (lambda n: None)
    hi, share_hi, base = check_reachable(pruner, det, convs, target, size, factors)
    report(1)
    lo, best = 0.0, (hi, share_hi)
    for probe in range(MAX_PROBES):
        mid = (lo + hi) / 2
        share = flops_share(pruner, det, _ratios(convs, mid, factors), size, base)
        report(probe + 2)
        if abs(share - target) < abs(best[1] - target):
            best = (mid, share)
        if abs(share - target) <= TOLERANCE:
            break
        lo, hi = (mid, hi) if share < target else (lo, mid)
    return _ratios(convs, best[0], factors), best[1]


def loss_proxy(det: nn.Layer, batches: list[Sequence[paddle.Tensor]]) -> Callable[[], float]:
    """A score for the sensitivity analysis (higher is better): 1 / mean detection loss on a few
    fixed training batches, the model in eval mode."""

    @paddle.no_grad()
    def score() -> float:
        was_training = det.training
        det.eval()
        if is_zoo(det):  # PaddleDetection computes losses in training mode only: freeze the norms
            det.train()
            for layer in det.sublayers():
                if isinstance(layer, nn.layer.norm._BatchNormBase):
                    layer.eval()
        total = 0.0
        for batch in batches:
            total += float(default_loss(det, batch))
        det.train() if was_training else det.eval()
        return len(batches) / max(total, 1e-6)

    return score


def sensitivity_factors(
    pruner: Any, convs: Sequence[Prunable], score: Callable[[], float], status_file: Path
) -> dict[str, float]:
    """Per-conv ratio factors from PaddleSlim's sensitivity analysis (each conv alone pruned by
    10%..90%, the relative score loss recorded; saved to status_file after every probe, so a rerun
    resumes). A conv's sensitivity is its mean loss over those ratios (gains count as 0); its factor
    is 2 / (1 + sensitivity / mean sensitivity): insensitive convs are pruned up to twice the
    uniform ratio, sensitive ones less. (PaddleSlim's own loss-threshold allocation degenerates to
    one ratio for every conv when the losses are flat, e.g. on a barely trained model.)"""
    names = [c.name for c in convs]
    table = pruner.sensitive(eval_func=score, sen_file=str(status_file), target_vars=names, skip_vars=[])
    sens = {n: sum(max(float(v), 0.0) for v in table[n].values()) / max(len(table[n]), 1) for n in names}
    mean = sum(sens.values()) / max(len(sens), 1)
    if mean <= 0:
        return dict.fromkeys(names, 1.0)
    return {n: 2.0 / (1.0 + s / mean) for n, s in sens.items()}
