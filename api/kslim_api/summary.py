"""One-line strategy summaries, for `status.strategySummary` (the Strategy print column) and reports."""

from __future__ import annotations

import decimal
from collections.abc import Sequence

from kslim_api.v1alpha1 import StrategyStep

MAX_SUMMARY = 256


def step_summary(step: StrategyStep) -> str:
    if step.prune is not None:
        p = step.prune
        if p.ratio is not None:
            amount = p.ratio
        elif p.ratios is not None:
            amount = f"{len(p.ratios)} params"
        else:
            percent = decimal.Decimal(p.target_flops_reduction or "0") * 100
            amount = f"-{percent.normalize():f}% flops" + (" sensitivity" if p.sensitivity else "")
        return f"prune({p.criterion} {amount})"
    if step.distill is not None:
        return f"distill({step.distill.teacher.label})"
    if step.qat is not None:
        flags = [f for f, on in (("pact", step.qat.pact), ("wpact", step.qat.weight_pact)) if on]
        return f"qat({' '.join(flags)})" if flags else "qat"
    if step.ptq is not None:
        return f"ptq({step.ptq.algo})"
    if step.sparsify is not None:
        sp = step.sparsify
        how = " gmp" if sp.gmp is not None else ""
        what = " 1x1" if sp.params_type == "conv1x1" else ""
        return f"sparsify({sp.ratio}{what}{how})"
    raise AssertionError("a step sets one method")


def strategy_summary(steps: Sequence[StrategyStep]) -> str:
    """e.g. "prune(fpgm 0.3) > qat(pact)"; "baseline" for an empty strategy."""
    text = " > ".join(step_summary(s) for s in steps) or "baseline"
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 3] + "..."
