"""A stage and the pipeline that runs stages in order, skipping those a previous run completed."""

from __future__ import annotations

import time
from typing import Any

from kslim_runner.pipeline.context import RunContext


class Stage:
    """key: unique in the checkpoint; stage: the contract's stage name (progress, termination)."""

    key: str = ""
    stage: str = ""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError


class Pipeline:
    def __init__(self, stages: list[Stage]) -> None:
        keys = [s.key for s in stages]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate stage keys in {keys}")
        self.stages = stages
        self.current: Stage | None = None

    def run(self, ctx: RunContext) -> None:
        for st in self.stages:
            self.current = st
            if st.key in ctx.state.done:
                print(f"kslim: stage {st.key}: done in an earlier run, skipped", flush=True)
                continue
            print(f"kslim: stage {st.key}: started", flush=True)
            t0 = time.monotonic()
            result = st.run(ctx)
            seconds = round(time.monotonic() - t0, 3)
            ctx.state.done[st.key] = {"stage": st.stage, "seconds": seconds, "result": result}
            ctx.save()
            print(f"kslim: stage {st.key}: done in {seconds:.1f} s", flush=True)
