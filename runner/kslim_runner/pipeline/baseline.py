"""baseline: the model the job starts from: given weights (checked against the architecture), a
given inference model, or a detector trained here on the train split."""

from __future__ import annotations

import shutil
from typing import Any

import paddle

from kslim_runner.atomic import write_with
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.models import build_model, job_model_config, load_weights, row_model
from kslim_runner.pipeline.stage import Stage
from kslim_runner.pipeline.state import Row
from kslim_runner.train.config import train_config_from_spec
from kslim_runner.train.detector import train_detector


class BaselineStage(Stage):
    key = stage = "baseline"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        prep = ctx.state.done["prepare"]["result"]
        if prep["inferenceModel"]:
            row = Row(
                "baseline",
                "baseline",
                "baseline",
                model={"kind": "inference", "dir": prep["inferenceModel"]},
                export_dir=prep["inferenceModel"],
            )
            ctx.put_row(row)
            return {"source": "inferenceModel"}
        cfg = job_model_config(ctx.spec, ctx.resolve)
        paddle.seed(ctx.spec.train.seed)
        det = build_model(cfg)
        model = row_model(cfg)
        if prep["weights"]:
            load_weights(det, ctx.path(prep["weights"]))
            model["weights"] = prep["weights"]
            ctx.put_row(
                Row("baseline", "baseline", "baseline", model=model, notes=list(prep.get("notes", [])))
            )
            return {"source": "weights"}
        work = ctx.stage_dir(self.key)
        tcfg = train_config_from_spec(ctx.spec.train, len(ctx.index("train")))
        result = train_detector(det, ctx.index("train"), tcfg, work, stage=self.stage)
        weights = work / "model.pdparams"
        write_with(weights, lambda tmp: paddle.save(det.state_dict(), str(tmp)))
        shutil.rmtree(work / "checkpoint", ignore_errors=True)
        model["weights"] = ctx.rel(weights)
        notes = list(prep.get("notes", []))
        ctx.put_row(Row("baseline", "baseline", "baseline", model=model, train=result.to_dict(), notes=notes))
        return {"source": "trained", "train": result.to_dict()}
