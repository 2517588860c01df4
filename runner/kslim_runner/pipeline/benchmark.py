"""benchmark: latency of each row's exported model per precision (fp32 always; int8 for quantized
models; fp16 on GPU), with threads and device recorded."""

from __future__ import annotations

from typing import Any

from kslim_runner.data.coco import read_image
from kslim_runner.measure.latency import measure_latency
from kslim_runner.measure.predictor import PredictorOptions
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.stage import Stage
from kslim_runner.progress import Progress


def precisions_for(
    requested: list[str], quantized: bool, device: str, tensorrt: bool = False
) -> tuple[list[str], list[str]]:
    """(precisions to time, notes on those skipped). fp32 is always timed; int8 runs on oneDNN on
    CPU, and on GPU through TensorRT only (as fp16), so without it they are skipped, not mislabelled."""
    timed, notes = ["fp32"], []
    for p in requested:
        if p == "fp32":
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
    key = stage = "benchmark"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        b = ctx.spec.benchmark
        sample = read_image(ctx.index("val").files[0])
        rows = list(ctx.rows)
        progress = Progress(self.stage, len(rows))
        out = {}
        for i, row in enumerate(rows):
            assert row.export_dir is not None and row.cost is not None
            timed, notes = precisions_for(
                list(b.precisions), bool(row.cost.get("quantized")), ctx.device.device, b.tensorrt
            )
            for prec in timed:
                if prec in row.latency:
                    continue
                opts = PredictorOptions(
                    device=ctx.device.device, precision=prec, threads=b.threads, tensorrt=b.tensorrt
                )
                lat = measure_latency(
                    ctx.path(row.export_dir),
                    opts=opts,
                    batch_size=b.batch_size,
                    warmup=b.warmup,
                    iterations=b.iterations,
                    sample=sample,
                )
                row.latency[prec] = lat.to_dict()
            row.notes = sorted(set(row.notes) | set(notes))
            ctx.put_row(row)
            out[row.name] = {p: v["p50"] for p, v in row.latency.items()}
            progress.update(i + 1)
        progress.close()
        return out
