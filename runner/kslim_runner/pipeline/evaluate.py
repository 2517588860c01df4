"""evaluate: COCO box AP (and mask AP for mask models) of each row's exported model through Paddle
Inference (what is shipped), its cost figures, and for Python-side models the in-training AP as a
cross-check."""

from __future__ import annotations

from typing import Any

from kslim_runner.measure.coco_eval import evaluate_model
from kslim_runner.measure.cost import model_cost
from kslim_runner.measure.dygraph_eval import evaluate_dygraph
from kslim_runner.measure.predictor import PredictorOptions
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.models import can_restore, load_row_model, source_kind
from kslim_runner.pipeline.stage import Stage
from kslim_runner.progress import Progress

#: Each row's scored detections (COCO results format), in its stage folder stages/<row>/.
DETECTIONS_FILE = "detections.json"


def detections_path(row_name: str) -> str:
    """Where a row's detections are, relative to the output folder."""
    return f"stages/{row_name}/{DETECTIONS_FILE}"


def eval_precision(quantized: bool, device: str) -> str:
    """A quantized model is evaluated as it runs: int8 (oneDNN) on CPU; GPU evaluation stays fp32
    unless TensorRT is used at benchmark time."""
    return "int8" if quantized and device == "cpu" else "fp32"


class EvaluateStage(Stage):
    key = stage = "evaluate"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        spec = ctx.spec
        val = ctx.index("val")
        threshold = float(spec.evaluation.score_threshold)
        summary = {}
        for row in list(ctx.rows):
            if row.eval is None:
                assert row.export_dir is not None
                model_dir = ctx.path(row.export_dir)
                row.cost = model_cost(model_dir)
                opts = PredictorOptions(
                    device=ctx.device.device,
                    threads=spec.benchmark.threads,
                    precision=eval_precision(row.cost["quantized"], ctx.device.device),
                )
                row.eval = evaluate_model(
                    model_dir,
                    val,
                    batch_size=spec.evaluation.batch_size,
                    score_threshold=threshold,
                    opts=opts,
                    detections_out=ctx.path(detections_path(row.name)),
                ).to_dict()
                row.eval["precision"] = opts.precision
                # PaddleDetection models: only the export is measured (no rebuild to cross-check)
                if can_restore(row.model) and source_kind(row.model) == "detector":
                    det = load_row_model(row.model, ctx.path)
                    row.eval_training = evaluate_dygraph(
                        det, val, batch_size=spec.evaluation.batch_size, score_threshold=threshold
                    )
                ctx.put_row(row)
                done = Progress(self.stage, len(val), start=len(val))
                done.emit(ap=row.eval["ap"])  # the operator's latest-AP figure
                done.close()
                mask = f" mask AP {row.eval['maskAp']:.4f}" if row.eval.get("maskAp") is not None else ""
                print(
                    f"kslim: {row.name}: AP {row.eval['ap']:.4f} AP50 {row.eval['ap50']:.4f}{mask} "
                    f"({row.eval['imagesPerSecond']} images/s)",
                    flush=True,
                )
            summary[row.name] = {"ap": row.eval["ap"], "ap50": row.eval["ap50"]}
            if row.eval.get("maskAp") is not None:
                summary[row.name]["maskAp"] = row.eval["maskAp"]
        return summary
