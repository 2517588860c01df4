"""Which conv filters a prune step may remove, and how many: the prunable convs of a detector (the
masters of PaddleSlim's pruning groups; head output convs never are), the parameters a step's
patterns select, and the checks that turn bad selections into user errors before anything runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kslim_api.contract import Reason
from paddle import nn

from kslim_runner.errors import UserError
from kslim_runner.methods.common import match_names

#: Largest uniform ratio a FLOPs-target search may try.
MAX_RATIO = 0.95


@dataclass(frozen=True)
class Prunable:
    name: str  # Paddle's parameter name, e.g. conv2d_27.w_0 (what PaddleDetection slim configs use)
    structured: str  # state_dict name, e.g. neck.blocks.0.conv0.conv.weight
    channels: int  # filters (output channels)


def conv_weights(det: nn.Layer) -> list[tuple[str, str]]:
    """(Paddle name, structured name) of every conv weight of the detector."""
    return [
        (layer.weight.name, f"{lname}.weight")
        for lname, layer in det.named_sublayers()
        if isinstance(layer, nn.Conv2D)
    ]


def prunable_convs(det: nn.Layer, pruner: Any) -> list[Prunable]:
    """Convs whose filters can be removed: PaddleSlim's pruning groups on the filter axis. Excluded
    by PaddleSlim's graph analysis: the heads' output convs (leaves), depthwise convs (pruned with
    the conv before them), and convs feeding a concat (not supported by its analysis)."""
    structured = {p.name: n for n, p in det.named_parameters()}
    shapes = {p.name: p.shape for p in det.parameters()}
    out = []
    for c in pruner.collections:
        if c.master_axis == 0 and c.master_name in structured:
            out.append(Prunable(c.master_name, structured[c.master_name], int(shapes[c.master_name][0])))
    return out


def filters_removed(channels: int, ratio: float) -> int:
    """How many filters PaddleSlim's criteria remove for a ratio (before their keep-one clamp)."""
    return round(channels * ratio)


def max_safe_ratio(channels: int) -> float:
    """The largest ratio that keeps at least one filter of a conv with this many filters."""
    return math.floor((channels - 1) / channels * 100) / 100


UNPRUNABLE = (
    "head output convs (their channels are anchors x (5 + classes)), depthwise convs (pruned with "
    "the conv before them) and convs feeding a concat"
)


def _listed(names: list[str]) -> str:
    return f"{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}"


@dataclass(frozen=True)
class Selection:
    """What a step prunes ({Paddle name: ratio}) and the named convs it cannot prune."""

    ratios: dict[str, float]
    skipped: list[str]

    def note(self) -> str | None:
        """One line for the row: PaddleSlim leaves these convs whole (as PaddleDetection's Pruner
        does, silently, for its configs' lists); kslim says so."""
        if not self.skipped:
            return None
        return (
            f"{len(self.skipped)} named conv(s) cannot be pruned and were left whole "
            f"({_listed(self.skipped)}): {UNPRUNABLE}"
        )


def _resolve(
    pattern: str, what: str, names: list[tuple[str, str]], prunable: dict[str, Prunable], skipped: list[str]
) -> list[str]:
    """The prunable convs a pattern selects; the unprunable ones it names go to `skipped`."""
    matched = match_names(pattern, names)
    if not matched:
        example = next((s for _, s in names if ".neck." in f".{s}"), names[0][1] if names else "")
        raise UserError(
            f"prune.{what}: {pattern!r} matches no parameter of this model; name conv weights by "
            f"Paddle name (e.g. {names[0][0] if names else 'conv2d_0.w_0'}) or structured name "
            f"(e.g. {example}), globs allowed",
            reason=Reason.INVALID_SPEC,
        )
    skipped.extend(m for m in matched if m not in prunable and m not in skipped)
    return [m for m in matched if m in prunable]


def select_ratios(step: Any, det: nn.Layer, prunables: list[Prunable], ratio: float | None) -> Selection:
    """The convs to prune and their ratios. step.ratios: each key's matches get its ratio (an exact
    name wins over a glob, then the first matching key); otherwise `ratio` for every conv that
    step.params select (default: every prunable conv). ratio None: selection only (ratio 0).
    Named convs that cannot be pruned are skipped with a note, as long as something is pruned."""
    names = conv_weights(det)
    prunable = {p.name: p for p in prunables}
    chosen: dict[str, float] = {}
    skipped: list[str] = []
    if step.ratios:
        exact = {k for k in step.ratios if "*" not in k and "?" not in k and "[" not in k}
        for key in sorted(step.ratios, key=lambda k: k not in exact):
            for name in _resolve(key, f"ratios[{key!r}]", names, prunable, skipped):
                chosen.setdefault(name, float(step.ratios[key]))
        what = "ratios"
    else:
        selected = (
            [n for pat in step.params for n in _resolve(pat, "params", names, prunable, skipped)]
            if step.params
            else list(prunable)
        )
        chosen = dict.fromkeys(selected, 0.0 if ratio is None else ratio)
        what = "params"
    if not chosen:
        raise UserError(
            f"prune.{what} names only parameters that cannot be pruned ({_listed(skipped)}): "
            f"{UNPRUNABLE}; pick other convs",
            reason=Reason.INVALID_SPEC,
        )
    check_keeps_filters(chosen, prunable)
    return Selection(chosen, skipped)


def check_keeps_filters(ratios: dict[str, float], prunable: dict[str, Prunable]) -> None:
    """A ratio that would remove every filter of a conv is a user error (PaddleSlim would silently
    keep one)."""
    for name, r in ratios.items():
        p = prunable[name]
        if filters_removed(p.channels, r) >= p.channels:
            raise UserError(
                f"prune: ratio {r:g} would remove all {p.channels} filters of {name} ({p.structured}), "
                f"leaving the layer with zero channels; use a ratio of at most "
                f"{max_safe_ratio(p.channels):g} for it",
                reason=Reason.INVALID_SPEC,
            )
