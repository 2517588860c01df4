"""PaddleDetection's unstructured pruning (slim: UnstructuredPruner) -> kslim's sparsify step, and
why slim: OFA is refused (pure: parsed YAML in, step fields or one message out).

PaddleDetection 2.6 (ppdet/slim/unstructured_prune.py) builds PaddleSlim's GMPUnstructuredPruner
from these keys, all required but prune_params_type, always with local_sparsity and with the
epochs multiplied by the iterations of one epoch:

    UnstructuredPruner: {stable_epochs, pruning_epochs, tunning_epochs, pruning_steps, ratio,
                         initial_ratio, prune_params_type: null | conv1x1_only}
"""

from __future__ import annotations

from typing import Any

from kslim_api.slimconfig_numbers import read_ratio

#: UnstructuredPruner key -> sparsify.gmp field (counts of epochs; unit epochs).
SCHEDULE_KEYS = {
    "stable_epochs": "stable",
    "pruning_epochs": "pruning",
    "tunning_epochs": "tuning",  # sic: PaddleDetection's spelling
    "pruning_steps": "pruningSteps",
}
PARAMS_TYPES = {None: "all", "conv1x1_only": "conv1x1"}
REQUIRED = ("ratio", "initial_ratio", *SCHEDULE_KEYS)

#: Measured on this stack (bench/ofa_probe.py): PaddleSlim 2.6's OFA trains a PicoDet supernet, but
#: OFA.export cuts the sub-network's convs and not its batch norms (SuperBatchNorm2D records no
#: pruned shape), so the exported sub-network does not run.
OFA_REFUSAL = (
    "slim: 'OFA' is not supported: PaddleSlim 2.6's OFA.export cuts a PicoDet sub-network's convs but "
    "not their batch norms (SuperBatchNorm2D keeps no pruned shape), so the sub-network fails to run "
    "(measured, bench/ofa_probe.py: a batch norm of 24 for 12 channels) and nothing deployable comes "
    "out; use slim: Pruner (structured) or UnstructuredPruner"
)

KEY_MAP: tuple[tuple[str, str], ...] = (
    ("slim: UnstructuredPruner + UnstructuredPruner.ratio", "a sparsify step: ratio"),
    (
        "UnstructuredPruner.stable_epochs, pruning_epochs, tunning_epochs, pruning_steps, initial_ratio",
        "sparsify.gmp: unit epochs, stable, pruning, tuning, pruningSteps, initialRatio",
    ),
    ("UnstructuredPruner.prune_params_type (null / conv1x1_only)", "sparsify.paramsType (all / conv1x1)"),
    ("slim: OFA", "refused with one line (what fails, measured)"),
)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def sparsify_fields(sec: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The sparsify step's fields from an UnstructuredPruner section (consumed: what is left over is
    for the caller to report); each problem names its key."""
    where = "UnstructuredPruner."
    missing = [k for k in REQUIRED if k not in sec]
    if missing:
        problems.append(
            f"{where}{', '.join(missing)}: required (PaddleDetection's UnstructuredPruner has no default)"
        )
    out: dict[str, Any] = {}
    gmp: dict[str, Any] = {"unit": "epochs"}
    for key, alias in (("ratio", None), ("initial_ratio", "initialRatio")):
        if key not in sec:
            continue
        ratio = read_ratio(problems, f"{where}{key}", sec.pop(key))
        if ratio is None:
            continue
        if alias is None:
            out["ratio"] = ratio
        else:
            gmp[alias] = ratio
    for key, alias in SCHEDULE_KEYS.items():
        if key not in sec:
            continue
        value = sec.pop(key)
        count = _count(value)
        if count is None:
            problems.append(
                f"{where}{key}: {value!r} is not a whole number of {key.split('_')[-1]} (0 or more)"
            )
        else:
            gmp[alias] = count
    kind = sec.pop("prune_params_type", None)
    if kind in PARAMS_TYPES:
        out["paramsType"] = PARAMS_TYPES[kind]
    else:
        problems.append(f"{where}prune_params_type: {kind!r} is not supported (null or conv1x1_only)")
    out["gmp"] = gmp
    return out
