"""prune: structured filter pruning with PaddleSlim's dygraph pruners (L1NormFilterPruner,
FPGMFilterPruner) by a uniform ratio, per-conv ratios, or a FLOPs target (a uniform ratio searched,
or per-conv ratios shaped by a sensitivity analysis), then fine-tuning with the runner's training loop.
Filters are removed for real: the exported model has fewer channels, GFLOPs and parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kslim_api.v1alpha1 import PruneStep
from paddleslim.dygraph import FPGMFilterPruner, L1NormFilterPruner

from kslim_runner.methods.common import (
    fine_tune,
    fine_tune_config,
    model_config,
    quiet_paddleslim,
    save_weights,
    source_detector,
    step_key,
)
from kslim_runner.methods.prune_plan import (
    drop_backups,
    groups_of,
    layout_change,
    load_pruned,
    save_layout,
    shapes_of,
)
from kslim_runner.methods.prune_search import (
    MAX_PROBES,
    check_reachable,
    conv_flops,
    loss_proxy,
    search_ratios,
    sensitivity_factors,
    trace_inputs,
    trace_size,
)
from kslim_runner.methods.prune_select import Prunable, Selection, prunable_convs, select_ratios
from kslim_runner.models.base import Detector
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import MethodDescriptor, register_method
from kslim_runner.pipeline.models import build_model
from kslim_runner.pipeline.state import Row
from kslim_runner.progress import Progress
from kslim_runner.train.loop import batch_source

CRITERIA = {"fpgm": "FPGM", "l1_norm": "L1-norm"}
#: Training batches the sensitivity analysis scores each probe on, and probes per conv (10%..90%).
SENSITIVITY_BATCHES = 2
SENSITIVITY_PROBES = 9


def prune_label(cfg: PruneStep) -> str:
    if cfg.ratio is not None:
        how = f"ratio {cfg.ratio}"
    elif cfg.ratios:
        how = "per-conv ratios"
    else:
        how = f"FLOPs -{float(cfg.target_flops_reduction or 0) * 100:g}%"
        how += ", sensitivity" if cfg.sensitivity else ""
    return f"Pruning-{CRITERIA[cfg.criterion]} ({how})"


def make_pruner(criterion: str, det: Detector) -> Any:
    """The PaddleSlim pruner (it traces the model once to find the pruning groups)."""
    det.eval()
    size = trace_size(det.config.input_size)
    cls = FPGMFilterPruner if criterion == "fpgm" else L1NormFilterPruner
    return cls(det, trace_inputs(det, size))


def plan_ratios(
    ctx: RunContext, cfg: PruneStep, det: Detector, pruner: Any, convs: list[Prunable], work: Path | None
) -> Selection:
    """The convs and ratios of this step. work None: checks only (no sensitivity analysis)."""
    if cfg.target_flops_reduction is None:
        return select_ratios(cfg, det, convs, None if cfg.ratio is None else float(cfg.ratio))
    target = float(cfg.target_flops_reduction)
    selection = select_ratios(cfg, det, convs, None)
    chosen = [c for c in convs if c.name in selection.ratios]
    size = trace_size(det.config.input_size)
    if work is None:
        check_reachable(pruner, det, chosen, target, size)
        return selection
    if not cfg.sensitivity:
        return Selection(search_ratios_reporting(pruner, det, chosen, target, size), selection.skipped)
    tcfg = ctx.spec.train
    loader = batch_source(det, ctx.index("train"), None).loader(
        batch_size=tcfg.batch_size,
        seed=tcfg.seed,
        workers=0,
        start_step=0,
        steps=SENSITIVITY_BATCHES,
        rank=0,
        world=1,
    )
    print(f"kslim: prune: sensitivity analysis of {len(chosen)} convs", flush=True)
    probes = 1 + len(chosen) * SENSITIVITY_PROBES
    progress = Progress("prune", probes, every=max(1, probes // 50))
    proxy = loss_proxy(det, list(loader))

    def score() -> float:
        value = proxy()
        progress.update(min(progress.step + 1, probes))
        return value

    factors = sensitivity_factors(pruner, chosen, score, work / "sensitivity.pkl")
    progress.close()
    return Selection(search_ratios_reporting(pruner, det, chosen, target, size, factors), selection.skipped)


def search_ratios_reporting(
    pruner: Any,
    det: Detector,
    convs: list[Prunable],
    target: float,
    size: int,
    factors: dict[str, float] | None = None,
) -> dict[str, float]:
    """search_ratios with a progress line per probe (the search may take minutes) and its result."""
    print(
        f"kslim: prune: searching ratios of {len(convs)} convs for -{target:.1%} conv FLOPs "
        f"(at most {1 + MAX_PROBES} probes)",
        flush=True,
    )
    progress = Progress("prune", 1 + MAX_PROBES)
    ratios, share = search_ratios(pruner, det, convs, target, size, factors, on_probe=progress.update)
    progress.update(progress.total, force=True)
    progress.close()
    print(f"kslim: prune: ratios found remove {share:.1%} of conv FLOPs", flush=True)
    return ratios


def check_prune(ctx: RunContext, cfg: PruneStep) -> None:
    """Patterns that match nothing or only unprunable convs, ratios that empty a conv, and FLOPs
    targets out of reach: user errors, found on a freshly built model before anything trains."""
    det = build_model(model_config(ctx))
    with quiet_paddleslim():
        pruner = make_pruner(cfg.criterion, det)
        plan_ratios(ctx, cfg, det, pruner, prunable_convs(det, pruner), None)


def _filters(det: Detector, convs: list[Prunable], ratios: dict[str, float]) -> tuple[int, int]:
    """(filters left, filters before) over the pruned convs."""
    shapes = {p.name: p.shape for p in det.parameters()}
    before = sum(c.channels for c in convs if c.name in ratios)
    return sum(int(shapes[c.name][0]) for c in convs if c.name in ratios), before


def run_prune(ctx: RunContext, cfg: PruneStep, source: Row) -> Row:
    key = step_key(ctx, "prune")
    work = ctx.stage_dir(key)
    det = source_detector(ctx, source, "prune")
    size = trace_size(det.config.input_size)
    with quiet_paddleslim():
        pruner = make_pruner(cfg.criterion, det)
        convs = prunable_convs(det, pruner)
        selection = plan_ratios(ctx, cfg, det, pruner, convs, work)
        ratios = selection.ratios
        before, before_groups, flops_before = shapes_of(det), groups_of(det), conv_flops(det, size)
        pruner.prune_vars(ratios, 0)
        drop_backups(det)
        flops_after = conv_flops(det, size)
    left, total = _filters(det, convs, ratios)
    layout = {
        **layout_change(before, before_groups, det),
        "criterion": cfg.criterion,
        "ratios": ratios,
        "filters": {"before": total, "after": left},
        "convFlops": {"before": flops_before, "after": flops_after, "inputSize": size},
    }
    save_layout(work / "layout.json", layout)
    print(
        f"kslim: prune: {len(ratios)} convs, {total - left} of {total} filters removed; conv FLOPs "
        f"-{1 - flops_after / flops_before:.1%}",
        flush=True,
    )
    tcfg = fine_tune_config(ctx, cfg.fine_tune)
    result = fine_tune(ctx, det, tcfg, work, "prune") if tcfg.iterations > 0 else None
    weights = work / "model.pdparams"
    save_weights(det, weights)
    notes = [
        f"{CRITERIA[cfg.criterion]} removed {total - left} of {total} filters in {len(ratios)} convs "
        f"({(total - left) / max(total, 1):.1%}); conv FLOPs -{1 - flops_after / flops_before:.1%}"
    ]
    if selection.note():
        notes.append(str(selection.note()))
    if result is None:
        notes.append("no fine-tuning in this step (fineTune.iterations 0)")
    return Row(
        key,
        "prune",
        prune_label(cfg),
        model={
            "kind": "prune",
            "source": source.model,
            "layout": ctx.rel(work / "layout.json"),
            "weights": ctx.rel(weights),
        },
        train=None if result is None else result.to_dict(),
        notes=notes,
    )


register_method(MethodDescriptor("prune", PruneStep, run_prune, check=check_prune, restore=load_pruned))
