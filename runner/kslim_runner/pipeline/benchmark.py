"""benchmark: latency of each row's exported model in the precision it ships in (fp32 for a float
model, int8 for a quantized one; fp16 on GPU with TensorRT), with threads and device recorded."""

from __future__ import annotations

from typing import Any

from kslim_runner.data.coco import read_image
from kslim_runner.measure.latency import compare_latency
from kslim_runner.measure.predictor import PredictorOptions
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.stage import Stage
from kslim_runner.progress import Progress

FAKE_QUANT_FP32 = (
    "fp32 not timed: a quantized model's fp32 run executes its fake-quant ops in float, which is no "
    "model anyone ships; its speed-up is int8 against the baseline's fp32"
)


def precisions_for(
    requested: list[str], quantized: bool, device: str, tensorrt: bool = False
) -> tuple[list[str], list[str]]:
    """(precisions to time, notes on those skipped). A float model is timed in fp32; a quantized one
    in int8 where int8 kernels run (oneDNN on CPU, TensorRT on GPU), else in fp32 with a note; fp16
    only on GPU with TensorRT. Nothing is timed that would be mislabelled."""
    int8_runs = device != "gpu" or tensorrt
    timed = ["int8"] if quantized and int8_runs else ["fp32"]
    notes = [FAKE_QUANT_FP32] if quantized and int8_runs else []
    for p in requested:
        if p in timed or p == "fp32":
            continue
        if p == "int8" and not quantized:
            continue  # a float model has no int8 kernels to time; not worth a note on every row
        if p == "fp16" and device != "gpu":
            notes.append("fp16 not timed: it needs a GPU")
            continue
        if device == "gpu" and not tensorrt:
            notes.append(f"{p} not timed: on GPU it needs benchmark.tensorrt")
            continue
        timed.append(p)
    return timed, notes


class BenchmarkStage(Stage):
    """Every row's precisions timed side by side (alternating rounds, measure.latency.compare_latency),
    so the speed-ups in the report hold on a shared machine whose load drifts."""

    key = stage = "benchmark"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        b = ctx.spec.benchmark
        sample = read_image(ctx.index("val").files[0])
        rows = list(ctx.rows)
        todo = []
        for row in rows:
            assert row.export_dir is not None and row.cost is not None
            timed, notes = precisions_for(
                list(b.precisions), bool(row.cost.get("quantized")), ctx.device.device, b.tensorrt
            )
            row.notes = sorted(set(row.notes) | set(notes))
            for prec in timed:
                if prec not in row.latency:
                    opts = PredictorOptions(
                        device=ctx.device.device, precision=prec, threads=b.threads, tensorrt=b.tensorrt
                    )
                    todo.append((row, ctx.path(row.export_dir), opts))
        progress = Progress(self.stage, 1)
        if todo:
            lats = compare_latency(
                [(model, opts) for _, model, opts in todo],
                batch_size=b.batch_size,
                warmup=b.warmup,
                iterations=b.iterations,
                sample=sample,
            )
            for (row, _, opts), lat in zip(todo, lats, strict=True):
                row.latency[opts.precision] = lat.to_dict()
        for row in rows:
            ctx.put_row(row)
        progress.update(1)
        progress.close()
        return {row.name: {p: v["p50"] for p, v in row.latency.items()} for row in rows}
