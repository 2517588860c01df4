"""One stage per strategy step: runs the registered method on the previous row's model."""

from __future__ import annotations

from typing import Any

from kslim_api import StrategyStep

from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.methods import load_methods
from kslim_runner.pipeline.stage import Stage


class StepStage(Stage):
    def __init__(self, position: int, step: StrategyStep) -> None:
        self.position = position
        self.step = step
        self.stage = step.method
        self.key = f"step{position + 1}-{step.method}"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        method = load_methods()[self.step.method]
        config = getattr(self.step, self.step.method)
        source = ctx.rows[-1]
        row = method.run(ctx, config, source)
        row.name = self.key
        ctx.put_row(row)
        return {"row": row.name, "from": source.name}


def check_steps(ctx: RunContext, steps: list[StrategyStep]) -> None:
    """Each method's own fast checks, before any long computation."""
    methods = load_methods()
    for step in steps:
        m = methods[step.method]
        if m.check is not None:
            m.check(ctx, getattr(step, step.method))
