"""report: report.json, report.md, pareto.png (written under temp names, then renamed), the
quality gate, and the headline the termination message carries."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from kslim_runner.atomic import write_json, write_text, write_with
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.evaluate import detections_path
from kslim_runner.pipeline.stage import Stage
from kslim_runner.pipeline.state import STATE_FILE, Row
from kslim_runner.report import markdown, pareto
from kslim_runner.report.build import (
    ARCH_NAMES,
    delta,
    quality_gate,
    row_entry,
    row_metrics,
    shipped_precision,
)
from kslim_runner.report.environment import environment

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PARETO_PNG = "pareto.png"


def model_name(ctx: RunContext) -> str:
    m = ctx.spec.model
    if m.architecture is not None:
        name = ARCH_NAMES.get(m.architecture.value, m.architecture.value)
        return name if float(m.width) == 1.0 else f"{name} x{m.width}"
    if m.config is not None:  # a PaddleDetection config: its file name, as PaddleDetection names models
        return Path(m.config.uri).stem
    cfg_path = ctx.path(ctx.rows[0].export_dir or "") / "infer_cfg.yml"
    arch = (yaml.safe_load(cfg_path.read_text()) or {}).get("arch") if cfg_path.is_file() else None
    return f"{arch or 'inference model'} (exported)"


def build_report(ctx: RunContext) -> dict[str, Any]:
    rows = ctx.rows
    base, result = rows[0], rows[-1]
    spec = ctx.spec
    prep = ctx.state.done["prepare"]["result"]
    d = delta(base, result)
    res_metrics = row_metrics(result)
    gate = quality_gate(spec.quality_gate, d, res_metrics, shipped_precision(result))
    b = spec.benchmark
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJobReport",
        "job": ctx.name,
        "namespace": ctx.job.metadata.namespace,
        "generatedAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": model_name(ctx),
        "architecture": None if spec.model.architecture is None else spec.model.architecture.value,
        "inputSize": spec.model.input_size,
        "numClasses": spec.model.num_classes,
        "strategy": [s.method for s in ctx.steps],
        "baseline": row_metrics(base),
        "result": res_metrics,
        "delta": d,
        "qualityGate": gate,
        "rows": [row_entry(r, base) for r in rows],
        "device": ctx.device.device,
        "deviceReason": ctx.device.reason,
        "benchmark": {
            "batchSize": b.batch_size,
            "threads": b.threads,
            "warmup": b.warmup,
            "iterations": b.iterations,
            "tensorrt": b.tensorrt,
            # 1/5/15-minute load when the side-by-side timing started: context for its spread
            "loadAverage": next(
                (v["loadAverage"] for v in base.latency.values() if v.get("loadAverage")), None
            ),
        },
        "seed": spec.train.seed,
        "datasetHash": prep["datasetHash"],
        "dataset": {
            k: {"images": v["count"], "boxes": v["boxes"]}
            | {d: v[d] for d in ("droppedCrowd", "droppedSmall") if d in v}
            for k, v in prep["data"].items()
        },
        "environment": environment(),
        "artifacts": artifacts(ctx),
    }


def row_files(ctx: RunContext, row: Row) -> dict[str, str]:
    """A row's files a user may want, by kind: its inference model, its weights (.pdparams: what
    model.weights takes to start another job from it) and its detections; only those that exist."""
    files = {
        "model": ctx.path(row.export_dir) if row.export_dir else None,
        "weights": ctx.path(row.model["weights"]) if row.model.get("weights") else None,
        "detections": ctx.path(detections_path(row.name)),
    }
    return {k: ctx.artifact_uri(p) for k, p in files.items() if p is not None and p.exists()}


def artifacts(ctx: RunContext) -> dict[str, str]:
    """Every file a user may want: the result's model, weights and detections under plain keys, the
    report files, then every row's under `<row>/<kind>` (`baseline/weights`, ...)."""
    out = row_files(ctx, ctx.rows[-1])
    out |= {
        "report": ctx.artifact_uri(ctx.out / REPORT_JSON),
        "reportMarkdown": ctx.artifact_uri(ctx.out / REPORT_MD),
        "pareto": ctx.artifact_uri(ctx.out / PARETO_PNG),
        "state": ctx.artifact_uri(ctx.out / STATE_FILE),
    }
    for row in ctx.rows:
        out |= {f"{row.name}/{k}": v for k, v in row_files(ctx, row).items()}
    return out


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The termination message's body (docs/contracts.md), without outcome/reason/message. Its
    artifacts are the top-level ones (the per-row ones are in report.json): the message has 4 KiB."""
    out = {k: report[k] for k in ("baseline", "result", "delta", "qualityGate")}
    out["artifacts"] = {k: v for k, v in report["artifacts"].items() if "/" not in k}
    return out


class ReportStage(Stage):
    key = stage = "report"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        report = build_report(ctx)
        write_with(ctx.out / PARETO_PNG, lambda tmp: pareto.plot(report, tmp))
        write_text(ctx.out / REPORT_MD, markdown.render(report))
        write_json(ctx.out / REPORT_JSON, report)  # last: its presence means a complete report
        gate = report["qualityGate"]
        return {
            "table": markdown.table(report),
            "headline": headline(report),
            "passed": gate is None or gate["passed"],
            "gateMessage": None if gate is None else gate["message"],
        }
